"""File input and output shared by every tool: atomic writes (:mod:`.atomic`) and
webdataset shard names, lists and members (:mod:`.shards`)."""
