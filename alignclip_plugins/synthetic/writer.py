"""Shard files of the synthetic dataset: their paths, deterministic tar writing,
completeness checks.

A split's shards lie in a folder named for it, under the project's shard names
(:func:`alignclip_plugins.io.shards.shard_name`). Shards are written atomically
(:mod:`alignclip_plugins.io.atomic`): a shard only ever appears under its final name
complete.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from alignclip_plugins.io import shards
from alignclip_plugins.io.atomic import atomic_write_with

# Fixed tar header fields, so identical members give byte-identical shards.
TAR_MTIME = 946684800  # 2000-01-01 (tar warns about timestamps at the 1970 epoch)
TAR_MODE = 0o644

Member = tuple[str, bytes]  # (tar member name, content)


def shard_name(split: str, shard: int) -> str:
    """Shard path relative to the dataset root, e.g. "train/train-000003.tar"."""
    return f"{split}/{shards.shard_name(split, shard)}"


def shard_pattern(split: str, num_shards: int) -> str:
    """Brace pattern of all shards of a split, e.g. "train/train-{000000..000007}.tar"."""
    return f"{split}/{shards.shard_pattern(split, num_shards)}"


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar_atomic(path: Path, members: Iterable[Member]) -> int:
    """Atomically write a tar of ``members`` (in order) to ``path``; returns the member count."""
    written = 0

    def fill(f) -> None:
        nonlocal written
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
                written += 1

    atomic_write_with(path, fill)
    return written


def tar_is_complete(path: Path, expected_members: int) -> bool:
    """Whether ``path`` is a readable tar with exactly ``expected_members`` sample members."""
    try:
        return sum(1 for _ in shards.iter_members(path)) == expected_members
    except shards.ShardReadError:
        return False
