"""Reading captions: webdataset shards (``KEY.txt`` members) or text files (one a line).

Shards are read member by member (:func:`alignclip_plugins.io.shards.iter_members`) and
only ``.txt`` members are read: image members are skipped (seeked over in uncompressed
shards), never read into memory nor decoded. Sample keys follow webdataset exactly. Text
files key their captions by 1-based line number.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignclip_plugins.io.shards import (
    TAR_SUFFIXES,
    expand_patterns,
    is_tar,
    iter_members,
    shard_stem,
    shards_in_directory,
)
from alignclip_plugins.objects.parsing import Caption

log = logging.getLogger(__name__)

TEXT_SUFFIXES = (".txt",)


def input_stem(path: str | os.PathLike) -> str:
    """``train-000003.tar`` -> ``train-000003`` (:func:`~alignclip_plugins.io.shards.shard_stem`,
    so that training finds the sidecar); ``captions.txt`` -> ``captions``."""
    if is_tar(path):
        return shard_stem(path)
    name = Path(path).name
    for suffix in TEXT_SUFFIXES:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def expand_inputs(inputs: Sequence[str]) -> list[Path]:
    """Input paths: brace patterns and ``::`` lists expanded like ``--train-data``
    (``train-{000000..000009}.tar``), a directory replaced by its ``*.tar`` / ``*.tar.gz``
    / ``*.tgz`` / ``*.txt`` files (sorted)."""
    paths: list[Path] = []
    for item in expand_patterns(inputs):
        path = Path(item)
        if path.is_dir():
            found = shards_in_directory(path, TAR_SUFFIXES + TEXT_SUFFIXES)
            if not found:
                raise ValueError(f"directory {path} holds no .tar or .txt files to parse")
            paths.extend(map(Path, found))
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
    # compressed shards are detected and decompressed transparently
    for key, ext, data in iter_members(path, ("txt",)):
        keys.add(key)
        if ext != "txt":
            continue
        if key in captioned:
            raise ValueError(
                f"shard {path}: sample key {key!r} has more than one .txt member; "
                "keys must be unique within a shard (rewrite the shard)"
            )
        captioned.add(key)
        yield Caption(source, key, _decode(data, f"shard {path}, key {key!r}", stats).strip())
    missing = len(keys - captioned)
    if missing:
        stats.samples_without_caption += missing
        log.warning(
            "shard %s: %d samples have no .txt caption; they get no object set", path, missing
        )
