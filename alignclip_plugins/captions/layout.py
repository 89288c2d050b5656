"""The Flickr8k shard layout: ``ROOT/<split>-NNNNNN.tar`` (``KEY.jpg`` + ``KEY.txt``, the
image's captions one a line, samples sorted by key) and ``ROOT/sizes.json`` (samples per
shard, upstream open_clip_train's format, read for ``--train-num-samples``).
"""

from __future__ import annotations

import json
import os
import re
import tarfile
from pathlib import Path

SIZES_FILE = "sizes.json"
SHARD_DIGITS = 6


def shard_name(split: str, index: int) -> str:
    """``train-000003.tar``."""
    return f"{split}-{index:0{SHARD_DIGITS}d}.tar"


def split_shards(root: str | os.PathLike, split: str) -> list[Path]:
    """The shards of ``split`` in ``root``, in order (none: an empty list)."""
    pattern = re.compile(rf"^{re.escape(split)}-\d{{{SHARD_DIGITS}}}\.tar$")
    root = Path(root)
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if pattern.match(p.name) and p.is_file())


def read_sizes(root: str | os.PathLike) -> dict[str, int]:
    """``sizes.json`` of ``root`` (shard file name -> samples), empty when absent."""
    try:
        data = json.loads((Path(root) / SIZES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): int(v) for k, v in data.items()} if isinstance(data, dict) else {}


def count_samples(shard: str | os.PathLike) -> int:
    """Samples with a ``txt`` member in one shard (tar headers only; images are skipped)."""
    with tarfile.open(shard, mode="r:*") as tar:
        return sum(
            1
            for member in tar
            if member.isreg() and member.name.rsplit("/", 1)[-1].partition(".")[2].lower() == "txt"
        )
