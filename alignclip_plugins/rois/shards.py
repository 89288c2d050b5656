"""Reading webdataset shards for ROI work: shard lists, sample keys, chosen members."""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")


def expand_shards(patterns: str | Sequence[str]) -> list[str]:
    """Shard URLs of open_clip ``--train-data`` values (``::``-separated brace patterns)."""
    from braceexpand import braceexpand

    if isinstance(patterns, str):
        patterns = [patterns]
    urls: list[str] = []
    for value in patterns:
        for part in str(value).split("::"):
            urls.extend(braceexpand(part))
    return urls


def iter_samples(
    path: str | os.PathLike, exts: Sequence[str] = ()
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {ext: bytes})`` per sample of a tar shard, in shard order.

    Only members whose (lower-case) extension is in ``exts`` are read; the others are
    skipped without reading. Keys follow webdataset (member path up to the first dot of
    its file name). A key must not reappear after another key's members.
    """
    wanted = {e.lower() for e in exts}
    current: str | None = None
    members: dict[str, bytes] = {}
    seen: set[str] = set()
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                name = member.name
                if "/" not in name and name.startswith("__") and name.endswith("__"):
                    continue
                match = _KEY_EXT.match(name)
                if match is None:
                    continue
                key, ext = match.group(1), match.group(2).lower()
                if key != current:
                    if current is not None:
                        yield current, members
                    if key in seen:
                        raise ValueError(
                            f"shard {path}: members of sample {key!r} are not contiguous; "
                            "webdataset would split it into two samples (rewrite the shard)"
                        )
                    seen.add(key)
                    current, members = key, {}
                if ext in wanted:
                    f = tar.extractfile(member)
                    members[ext] = f.read() if f is not None else b""
            if current is not None:
                yield current, members
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(
            f"shard {path} is not a readable tar file ({type(e).__name__}: {e})"
        ) from e


def shard_keys(path: str | os.PathLike) -> list[str]:
    """The sample keys of a tar shard, in order (member headers only)."""
    return [key for key, _ in iter_samples(path)]


def local_shard(url: str) -> Path:
    """``url`` as an existing local file, or a ValueError saying it must be one."""
    path = Path(url)
    if "://" in url or url.startswith("pipe:") or not path.is_file():
        raise ValueError(f"shard {url} is not a local file (ROI conversion reads local shards)")
    return path
