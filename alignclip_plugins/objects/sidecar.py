"""Object-set sidecar files: one per input, ``{"key": ..., "objects": [...]}`` a line.

For an input ``X/train-000003.tar`` the sidecar is ``OUT/train-000003.objects.jsonl``; for
``captions.txt`` it is ``OUT/captions.objects.jsonl`` with keys "1", "2", ... (line
numbers). Sidecars are written atomically, so one that exists is complete.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_writer
from alignclip_plugins.objects.captions import input_stem

SIDECAR_SUFFIX = ".objects.jsonl"


def sidecar_path(out_dir: str | os.PathLike, input_path: str | os.PathLike) -> Path:
    """Where the object sets of ``input_path`` go in ``out_dir``."""
    return Path(out_dir) / f"{input_stem(input_path)}{SIDECAR_SUFFIX}"


def write_sidecar(path: str | os.PathLike, records: Iterable[tuple[str, list[str]]]) -> int:
    """Write ``(key, objects)`` records atomically; returns how many were written."""
    n = 0
    with atomic_writer(path) as f:
        for key, objects in records:
            f.write(json.dumps({"key": key, "objects": objects}, ensure_ascii=False))
            f.write("\n")
            n += 1
    return n


def iter_sidecar(path: str | os.PathLike) -> Iterator[tuple[str, list[str]]]:
    """The ``(key, objects)`` records of one sidecar; a bad line stops with its location."""
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key, objects = record["key"], record["objects"]
                if not isinstance(key, str) or not isinstance(objects, list):
                    raise TypeError("'key' must be a string and 'objects' a list")
                if not all(isinstance(o, str) for o in objects):
                    raise TypeError("every object must be a string")
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{path}, line {number}: not an object-set record ({e}); delete the file "
                    "and rerun 'alignclip objects parse' to rewrite it"
                ) from e
            yield key, objects


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
