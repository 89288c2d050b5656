"""Shard files: names, deterministic tar writing, completeness checks.

Shards are written atomically (:mod:`alignclip_plugins.io.atomic`): a shard only ever
appears under its final name complete.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Iterable
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_write_with

# Fixed tar header fields, so identical members give byte-identical shards.
TAR_MTIME = 946684800  # 2000-01-01 (tar warns about timestamps at the 1970 epoch)
TAR_MODE = 0o644

Member = tuple[str, bytes]  # (tar member name, content)


def shard_name(split: str, shard: int) -> str:
    """Shard path relative to the dataset root, e.g. "train/train-000003.tar"."""
    return f"{split}/{split}-{shard:06d}.tar"


def shard_pattern(split: str, num_shards: int) -> str:
    """Brace pattern of all shards of a split, e.g. "train/train-{000000..000007}.tar"."""
    return f"{split}/{split}-{{000000..{num_shards - 1:06d}}}.tar"


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
    """Whether ``path`` is a readable tar with exactly ``expected_members`` members."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            return len(tar.getmembers()) == expected_members
    except (OSError, tarfile.TarError):
        return False
