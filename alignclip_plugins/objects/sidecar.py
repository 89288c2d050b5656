"""Object-set sidecar files: one per input, one JSON record a line.

A sample with one caption: ``{"key": K, "objects": [...]}``. A sample whose ``txt`` holds
several captions, one a line (Flickr8k, COCO): ``{"key": K, "objects": [union],
"captions": [[objects of line 1], [objects of line 2], ...]}`` (one set per non-empty line,
in line order; ``objects`` is their union in order of first mention, for readers that want
one set per image). Sidecars written before per-caption sets existed have no
``captions``: each record is then one caption's set (the whole ``txt`` parsed as one).

For an input ``X/train-000003.tar`` the sidecar is ``OUT/train-000003.objects.jsonl``; for
``captions.txt`` it is ``OUT/captions.objects.jsonl`` with keys "1", "2", ... (line
numbers). Sidecars are written atomically, so one that exists is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_writer
from alignclip_plugins.objects.captions import input_stem

SIDECAR_SUFFIX = ".objects.jsonl"


def sidecar_path(out_dir: str | os.PathLike, input_path: str | os.PathLike) -> Path:
    """Where the object sets of ``input_path`` go in ``out_dir``."""
    return Path(out_dir) / f"{input_stem(input_path)}{SIDECAR_SUFFIX}"


@dataclass(frozen=True)
class ObjectRecord:
    """One sample of a sidecar: its objects and, for multi-caption samples, each caption's.

    ``captions`` is None for a one-caption record (then ``objects`` is that caption's set).
    """

    key: str
    objects: list[str]
    captions: list[list[str]] | None = None

    @property
    def caption_sets(self) -> list[list[str]]:
        """One object list per caption (one caption: ``[objects]``)."""
        return [self.objects] if self.captions is None else self.captions

    @property
    def num_captions(self) -> int:
        return 1 if self.captions is None else len(self.captions)


def union(sets: Sequence[Sequence[str]]) -> list[str]:
    """The objects of several captions, each once, in order of first mention."""
    return list(dict.fromkeys(o for objects in sets for o in objects))


def record_json(key: str, caption_sets: Sequence[Sequence[str]]) -> str:
    """The sidecar line (without newline) of a sample with these per-caption object lists."""
    record: dict = {"key": key, "objects": union(caption_sets)}
    if len(caption_sets) != 1:
        record["captions"] = [list(objects) for objects in caption_sets]
    return json.dumps(record, ensure_ascii=False)


def write_sidecar(path: str | os.PathLike, records: Iterable[tuple[str, list[str]]]) -> int:
    """Write ``(key, objects)`` one-caption records atomically; returns how many."""
    n = 0
    with atomic_writer(path) as f:
        for key, objects in records:
            f.write(record_json(key, [objects]) + "\n")
            n += 1
    return n


def _strings(value, what: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(o, str) for o in value):
        raise TypeError(f"{what} must be a list of strings")
    return value


def iter_records(path: str | os.PathLike) -> Iterator[ObjectRecord]:
    """The records of one sidecar; a bad line stops with its location."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key = record["key"]
                if not isinstance(key, str):
                    raise TypeError("'key' must be a string")
                objects = _strings(record["objects"], "'objects'")
                captions = record.get("captions")
                if captions is not None:
                    if not isinstance(captions, list) or not captions:
                        raise TypeError("'captions' must be a non-empty list of object lists")
                    captions = [_strings(c, "each caption's objects") for c in captions]
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                raise ValueError(
                    f"{path}, line {number}: not an object-set record ({e}); delete the file "
                    "and rerun 'alignclip objects parse' to rewrite it"
                ) from e
            yield ObjectRecord(key, objects, captions)


def iter_sidecar(path: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """The ``(key, objects)`` of each sample (multi-caption: the union over its captions)."""
    for record in iter_records(path):
        yield record.key, record.objects


def read_sidecar(path: str | os.PathLike) -> dict[str, list[str]]:
    """Objects by sample key of one sidecar."""
    return dict(iter_sidecar(path))


def sidecar_files(*locations: str | os.PathLike) -> list[Path]:
    """Sidecar files named directly or found (sorted) in the given directories."""
    files: list[Path] = []
    for location in locations:
        path = Path(location)
        if path.is_dir():
            found = sorted(path.glob(f"*{SIDECAR_SUFFIX}"))
            if not found:
                raise ValueError(
                    f"{path} holds no *{SIDECAR_SUFFIX} files; run 'alignclip objects parse' first"
                )
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise ValueError(f"{path} does not exist")
    return files


def load_object_sets(*locations: str | os.PathLike) -> dict[str, list[str]]:
    """Objects by webdataset ``__key__`` over every sidecar of the given directories/files.

    Keys must be unique across sidecars (they are for webdataset datasets written with
    global sample keys); a repeated key stops with both file names.
    """
    objects: dict[str, list[str]] = {}
    files = sidecar_files(*locations)
    for index, path in enumerate(files):
        for key, objs in iter_sidecar(path):
            if key in objects:
                first = next(f for f in files[: index + 1] if key in read_sidecar(f))
                where = f"twice in {path}" if first == path else f"in both {first} and {path}"
                raise ValueError(
                    f"sample key {key!r} is {where}; object sets need "
                    "dataset-wide unique keys (load shards one at a time with read_sidecar)"
                )
            objects[key] = objs
    return objects
