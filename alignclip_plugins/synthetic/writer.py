"""Shard files: names, deterministic tar writing, atomic replacement, completeness checks.

A file only ever appears under its final name complete: it is written to a hidden temporary
file in the same directory, flushed to disk and renamed with ``os.replace``.
"""

from __future__ import annotations

import io
import os
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path

# Fixed tar header fields, so identical members give byte-identical shards.
TAR_MTIME = 946684800  # 2000-01-01 (tar warns about timestamps at the 1970 epoch)
TAR_MODE = 0o644
TMP_SUFFIX = ".tmp"

Member = tuple[str, bytes]  # (tar member name, content)


def shard_name(split: str, shard: int) -> str:
    """Shard path relative to the dataset root, e.g. "train/train-000003.tar"."""
    return f"{split}/{split}-{shard:06d}.tar"


def shard_pattern(split: str, num_shards: int) -> str:
    """Brace pattern of all shards of a split, e.g. "train/train-{000000..000007}.tar"."""
    return f"{split}/{split}-{{000000..{num_shards - 1:06d}}}.tar"


def _temporary(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}{TMP_SUFFIX}")


def write_atomic(path: Path, fill: Callable[[io.BufferedWriter], None]) -> None:
    """Create ``path`` by calling ``fill(file)`` on a temporary file, then renaming it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary(path)
    try:
        with open(tmp, "wb") as f:
            fill(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(path: Path, text: str) -> None:
    """Atomically write a UTF-8 text file."""
    write_atomic(path, lambda f: f.write(text.encode("utf-8")))


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, TAR_MTIME, TAR_MODE
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_tar_atomic(path: Path, members: Iterable[Member]) -> int:
    """Atomically write a tar of ``members`` (in order) to ``path``; returns the member count."""
    written = 0

    def fill(f: io.BufferedWriter) -> None:
        nonlocal written
        with tarfile.open(fileobj=f, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            for name, data in members:
                tar.addfile(_tarinfo(name, len(data)), io.BytesIO(data))
                written += 1

    write_atomic(path, fill)
    return written


def tar_is_complete(path: Path, expected_members: int) -> bool:
    """Whether ``path`` is a readable tar with exactly ``expected_members`` members."""
    try:
        with tarfile.open(path, mode="r:") as tar:
            return len(tar.getmembers()) == expected_members
    except (OSError, tarfile.TarError):
        return False


def remove_temporaries(directory: Path) -> None:
    """Delete temporary files left in ``directory`` by an interrupted run."""
    if directory.is_dir():
        for tmp in directory.glob(f".*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
