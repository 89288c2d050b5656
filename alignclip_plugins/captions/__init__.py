"""Several captions per image (Flickr8k, Flickr30k, COCO): shards whose ``txt`` member holds
one caption a line.

- :mod:`.choice`: which caption a training sample shows in an epoch (``--plugins captions``);
- :mod:`.layout`: the Flickr8k shard layout (``ROOT/<split>-NNNNNN.tar``, ``sizes.json``);
- :mod:`.sources`: the annotation files users have (Kaggle ``captions.txt``, clip_benchmark's
  ``flickr8k_<split>_karpathy.txt``, the original ``Flickr8k.token.txt``) and split lists;
- :mod:`.convert`: ``alignclip captions convert``, a captioned image folder into shards.
"""
