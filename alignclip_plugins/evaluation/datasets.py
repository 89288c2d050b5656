"""Which evaluation dataset a ``--data`` path (and ``--dataset`` name) means, opened as a
:class:`~alignclip_plugins.evaluation.sources.Source`, and tail-class files.

``--data`` without ``--dataset`` is recognised as clip_benchmark's webdataset layout
(``ROOT/<split>/nshards.txt``), webdataset shards (a ``.tar`` path, a brace pattern, or a
directory of ``.tar`` files) or a folder of class folders; with ``--dataset`` it is the root
of that clip_benchmark dataset (see :mod:`alignclip_plugins.evaluation.benchmarks`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from alignclip_plugins.evaluation.benchmarks import benchmark_source, is_wds_root
from alignclip_plugins.evaluation.results import slug
from alignclip_plugins.evaluation.sources import (
    CAPTIONS,
    LABELS,
    Source,
    folder_source,
    webdataset_source,
)
from alignclip_plugins.io.shards import expand_shards, is_pattern

WDS, WEBDATASET, FOLDER = "wds", "webdataset", "folder"


def detect_format(data: str, split: str = "test") -> str:
    """``wds`` (clip_benchmark's layout), ``webdataset`` (shards) or ``folder``."""
    path = Path(data)
    if path.is_dir() and is_wds_root(path, split):
        return WDS
    if data.endswith(".tar") or is_pattern(data):
        return WEBDATASET
    if path.is_dir():
        if any(path.glob("*.tar")):
            return WEBDATASET
        if any(p.is_dir() for p in path.iterdir()):
            return FOLDER
    if not path.exists():
        raise FileNotFoundError(f"--data {data} does not exist")
    raise ValueError(
        f"--data {data}: not a clip_benchmark dataset root ({path}/{split}/nshards.txt), "
        f"webdataset shards (*.tar) or a folder of class sub-folders; name the dataset with "
        f"--dataset for clip_benchmark datasets"
    )


def shard_dir(data: str) -> Path:
    """The directory of webdataset shards ``data`` names (a directory, or its first shard's)."""
    path = Path(data)
    return path if path.is_dir() else Path(expand_shards(data)[0]).parent


def read_classnames(path: str | os.PathLike) -> list[str]:
    """Class names, one a line (or a JSON list): see ``alignclip describe``'s reader."""
    from alignclip_plugins.descriptions.generate import read_classnames as read

    return read(path)


def _shard_classnames(data: str) -> list[str]:
    where = shard_dir(data)
    candidates = (where / "classnames.txt", where.parent / "classnames.txt")
    found = [p for p in candidates if p.is_file()]
    if not found:
        raise FileNotFoundError(
            f"webdataset shards need class names: pass --classnames FILE (one name a line, line "
            f"i is class index i); looked for {candidates[0]} and {candidates[1]}"
        )
    return read_classnames(found[0])


def open_labelled(
    data: str,
    dataset: str | None = None,
    split: str = "test",
    classnames_file: str | None = None,
    annotation_file: str | None = None,
    download: bool = False,
    name: str | None = None,
) -> Source:
    """The labelled images that ``data`` / ``dataset`` name; ``name`` sets the result slug."""
    kind = (
        dataset
        if dataset in (FOLDER, WEBDATASET)
        else None
        if dataset
        else detect_format(data, split)
    )
    names = read_classnames(classnames_file) if classnames_file else None
    if kind == WEBDATASET:
        names = names if names is not None else _shard_classnames(data)
        source = webdataset_source(data, LABELS, slug(name or shard_dir(data).name), names)
    elif kind == FOLDER:
        if names is None and (Path(data) / "classnames.txt").is_file():
            names = read_classnames(Path(data) / "classnames.txt")
        source = folder_source(data, slug(name or Path(data).name), names)
    else:
        cb_name = dataset or f"wds/{Path(data).resolve().name}"
        source = benchmark_source(cb_name, data, split, annotation_file, download)
        if source.kind != LABELS:
            raise ValueError(
                f"dataset {cb_name} at {data} has captions, not class labels: use "
                f"'alignclip eval retrieval'"
            )
        if names is not None:
            if len(names) != len(source.classnames):
                raise ValueError(
                    f"{classnames_file} has {len(names)} class names, the dataset "
                    f"{len(source.classnames)} classes"
                )
            source.classnames = names
    if name:
        source.slug = slug(name)
    return source


def open_captioned(
    data: str,
    dataset: str | None = None,
    split: str = "test",
    annotation_file: str | None = None,
    download: bool = False,
    name: str | None = None,
) -> Source:
    """The captioned images that ``data`` / ``dataset`` name; ``name`` sets the result slug."""
    kind = dataset if dataset == WEBDATASET else None if dataset else detect_format(data, split)
    if kind == FOLDER:
        raise ValueError(
            f"--data {data} is a folder of class folders; retrieval needs captions: "
            f"clip_benchmark's flickr30k / mscoco / wds/NAME, or webdataset shards with 'txt' "
            f"captions"
        )
    if kind == WEBDATASET:
        source = webdataset_source(data, CAPTIONS, slug(name or shard_dir(data).name))
    else:
        cb_name = dataset or f"wds/{Path(data).resolve().name}"
        source = benchmark_source(cb_name, data, split, annotation_file, download)
        if source.kind != CAPTIONS:
            raise ValueError(f"dataset {cb_name} at {data} has class labels, not captions")
    if name:
        source.slug = slug(name)
    return source


def _norm(name) -> str:
    return " ".join(str(name).lower().split())


def read_attributes(path: str | os.PathLike, classnames: list[str]) -> dict[str, list[int]]:
    """Coarser attributes of the classes from ``path``, ``{"names": [class names],
    "attributes": {"colour": [value per name], ...}}`` (the embedded dataset's
    ``attributes.json``): per attribute, each dataset class's value as an id (equal ids =
    equal values), for ``<attribute>_top1``. Every class of the dataset must be named."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as e:
        raise ValueError(f"cannot read attributes file {p}: {e}") from e
    except ValueError as e:
        raise ValueError(f"{p}: invalid JSON ({e})") from e
    if not (
        isinstance(data, dict)
        and isinstance(data.get("names"), list)
        and isinstance(data.get("attributes"), dict)
    ):
        raise ValueError(f"{p}: expected {{'names': [...], 'attributes': {{name: [...]}}}}")
    index = {_norm(n): i for i, n in enumerate(data["names"])}
    missing = [c for c in classnames if _norm(c) not in index]
    if missing:
        raise ValueError(f"{p}: no attributes for class(es) {missing[:5]}")
    out = {}
    for name, values in data["attributes"].items():
        if not isinstance(values, list) or len(values) != len(data["names"]):
            raise ValueError(f"{p}: attribute {name!r} needs one value per name")
        of_class = [values[index[_norm(c)]] for c in classnames]
        ids = {v: i for i, v in enumerate(dict.fromkeys(map(json.dumps, of_class)))}
        out[str(name)] = [ids[json.dumps(v)] for v in of_class]
    return out


def read_tail(path: str | os.PathLike, classnames: list[str]) -> list[bool]:
    """Per class, whether it is a tail class, from ``path``: a file of tail class names (one a
    line, or a JSON list), ``{"names": [...], "tail": [bool, ...]}`` (the embedded dataset's
    ``classes.json``), or an ``alignclip objects stats`` vocabulary
    (``{"objects": [{"name", "tail"}, ...]}``: classes named like its tail objects)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read tail file {p}: {e}") from e
    keys = [_norm(c) for c in classnames]
    data = None
    if text.lstrip()[:1] in ("{", "["):
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{p}: invalid JSON ({e})") from e
    if isinstance(data, dict) and "names" in data and "tail" in data:
        flags = {_norm(n): bool(t) for n, t in zip(data["names"], data["tail"])}
        if not any(k in flags for k in keys):
            raise ValueError(f"{p}: none of its class names is a class of the dataset")
        return [flags.get(k, False) for k in keys]
    if isinstance(data, dict) and isinstance(data.get("objects"), list):
        tail = {_norm(o["name"]) for o in data["objects"] if o.get("tail")}
        return [k in tail for k in keys]
    if isinstance(data, dict):
        raise ValueError(
            f"{p}: expected a list of tail class names, {{'names': [...], 'tail': [...]}} or "
            f"{{'objects': [{{'name', 'tail'}}, ...]}}"
        )
    lines = data if isinstance(data, list) else text.splitlines()
    names = [_norm(n) for n in lines if str(n).strip() and not str(n).strip().startswith("#")]
    unknown = [n for n in names if n not in keys]
    if unknown:
        raise ValueError(
            f"{p}: {len(unknown)} tail class(es) are not classes of the dataset, e.g. "
            f"{unknown[0]!r}"
        )
    wanted = set(names)
    return [k in wanted for k in keys]
