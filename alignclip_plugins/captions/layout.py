"""The Flickr8k shard layout: ``ROOT/<split>-NNNNNN.tar`` (the project's shard names,
:func:`alignclip_plugins.io.shards.shard_name`; ``KEY.jpg`` + ``KEY.txt``, the image's
captions one a line, samples sorted by key) and ``ROOT/sizes.json`` (samples per
shard, upstream open_clip_train's format, read for ``--train-num-samples``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from alignclip_plugins.io.shards import iter_members, shard_index

SIZES_FILE = "sizes.json"


def split_shards(root: str | os.PathLike, split: str) -> list[Path]:
    """The shards of ``split`` in ``root`` (:func:`~alignclip_plugins.io.shards.shard_name`'s
    form), in order (none: an empty list)."""
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if shard_index(p.name, split) is not None and p.is_file()
    )


def read_sizes(root: str | os.PathLike) -> dict[str, int]:
    """``sizes.json`` of ``root`` (shard file name -> samples), empty when absent."""
    try:
        data = json.loads((Path(root) / SIZES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def count_samples(shard: str | os.PathLike) -> int:
    """Samples with a ``txt`` member in one shard (tar headers only; images are skipped).

    A damaged shard raises :class:`~alignclip_plugins.io.shards.ShardReadError` naming it.
    """
    return sum(1 for _, ext, _ in iter_members(shard) if ext == "txt")
