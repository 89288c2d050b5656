"""Reading captions: webdataset shards (``KEY.txt`` members) or text files (one a line).

Shards are read with :mod:`tarfile` and only ``.txt`` members are read: image members are
skipped (seeked over in uncompressed shards), never read into memory nor decoded. Sample keys follow webdataset exactly: the member path up to the
first dot of its file name (``webdataset.tariterators.base_plus_ext``), the extension
compared in lower case. Text files key their captions by 1-based line number.
"""

from __future__ import annotations

import logging
import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignclip_plugins.objects.parsing import Caption

log = logging.getLogger(__name__)

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")
TEXT_SUFFIXES = (".txt",)
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")  # webdataset's base_plus_ext


def is_tar(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(TAR_SUFFIXES)


def input_stem(path: str | os.PathLike) -> str:
    """``train-000003.tar`` -> ``train-000003``; ``captions.txt`` -> ``captions``."""
    name = Path(path).name
    for suffix in TAR_SUFFIXES + TEXT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Input paths: brace patterns expanded (``train-{000000..000009}.tar``), a directory
    replaced by its ``*.tar`` / ``*.tar.gz`` / ``*.tgz`` / ``*.txt`` files (sorted)."""
    from braceexpand import braceexpand

    paths: list[Path] = []
    for pattern in inputs:
        for item in braceexpand(pattern):
            path = Path(item)
            if path.is_dir():
                found = sorted(
                    p
                    for p in path.iterdir()
                    if p.is_file() and p.name.lower().endswith(TAR_SUFFIXES + TEXT_SUFFIXES)
                )
                if not found:
                    raise ValueError(f"directory {path} holds no .tar or .txt files to parse")
                paths.extend(found)
            elif path.is_file():
                paths.append(path)
            else:
                raise ValueError(f"input {path} does not exist")
    return paths


@dataclass
class ReadStats:
    """What reading one input found besides captions."""

    samples_without_caption: int = 0
    undecodable_captions: int = 0


def _decode(data: bytes, where: str, stats: ReadStats) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        stats.undecodable_captions += 1
        if stats.undecodable_captions <= 5:
            log.warning("%s: caption is not UTF-8; undecodable bytes replaced", where)
        return data.decode("utf-8", "replace")


def iter_captions(path: str | os.PathLike, stats: ReadStats | None = None) -> Iterator[Caption]:
    """The captions of one input, in file order."""
    stats = stats if stats is not None else ReadStats()
    if is_tar(path):
        yield from _iter_tar(Path(path), stats)
    else:
        yield from _iter_text(Path(path), stats)


def _iter_text(path: Path, stats: ReadStats) -> Iterator[Caption]:
    source = str(path)
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            text = _decode(line.rstrip(b"\r\n"), f"{path}, line {number}", stats)
            yield Caption(source, str(number), text.strip())


def _iter_tar(path: Path, stats: ReadStats) -> Iterator[Caption]:
    source = str(path)
    keys: set[str] = set()
    captioned: set[str] = set()
    try:
        # Random access: the image members of an uncompressed shard are seeked over
        # (compressed shards are detected and decompressed transparently).
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                name = member.name
                if "/" not in name and name.startswith("__") and name.endswith("__"):
                    continue  # webdataset meta file
                match = _KEY_EXT.match(name)
                if match is None:
                    continue  # no extension: webdataset ignores it too
                key, ext = match.group(1), match.group(2).lower()
                keys.add(key)
                if ext != "txt":
                    continue
                if key in captioned:
                    raise ValueError(
                        f"shard {path}: sample key {key!r} has more than one .txt member; "
                        "keys must be unique within a shard (rewrite the shard)"
                    )
                captioned.add(key)
                f = tar.extractfile(member)
                data = f.read() if f is not None else b""
                yield Caption(
                    source, key, _decode(data, f"shard {path}, key {key!r}", stats).strip()
                )
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ValueError(
            f"shard {path} is not a readable tar file ({type(e).__name__}: {e}); "
            "re-download or regenerate it, or leave it out of the inputs"
        ) from e
    missing = len(keys - captioned)
    if missing:
        stats.samples_without_caption += missing
        log.warning(
            "shard %s: %d samples have no .txt caption; they get no object set", path, missing
        )
