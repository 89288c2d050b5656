"""Checking ROI sidecars against what training reads.

* :func:`check_sidecars`: the cheap start-up check of ``--plugins softclip`` (every shard
  has a complete sidecar whose array files are whole and of the right shapes; no vector
  read);
* :func:`verify_sidecars`: ``alignclip rois check``, everything training will read: the
  array files (shapes and lengths against ``meta.json``'s sample count), every line of
  ``samples.jsonl`` (JSON, key, tags, one line per sample, no repeated key, as many tags
  as ROIs), every key of the shard (a sample without a row stops training), and every
  stored ROI vector finite (streamed in row blocks, with a progress bar). Each fault names
  the file, the line or row and the sample key.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from alignclip_plugins.io.shards import is_local, shard_keys
from alignclip_plugins.rois.storage import (
    ARRAY_FILES,
    ROI_DIM,
    SAMPLES_FILE,
    RoiDataError,
    RoiFileError,
    is_complete,
    iter_sample_lines,
    load_array,
    nonfinite_slots,
    parse_sample_line,
    read_meta,
    rewrite_hint,
    shape_problems,
    sidecar_path,
)

BLOCK_BYTES = 64 << 20  # features read per step of the finiteness scan


def check_sidecars(
    root: str | os.PathLike | None, urls: Sequence[str], dim: int = ROI_DIM
) -> list[Path]:
    """The sidecar of every shard in ``urls``, checked cheaply (training start-up): present,
    ``meta.json`` readable, array files whole (each memory-mapped) and of the right shapes.

    Raises :class:`RoiDataError` listing the shards whose sidecar is missing, damaged or of
    another vector size than ``dim``, with the command that writes them.
    """
    missing, wrong, paths = [], [], []
    for url in urls:
        path = sidecar_path(root, url)
        paths.append(path)
        if not is_complete(path):
            missing.append(f"{url} (expected {path})")
            continue
        try:
            meta = read_meta(path)
            arrays = [load_array(path, name, mmap=True) for name in ARRAY_FILES]
        except RoiDataError as e:
            wrong.append(str(e))
            continue
        wrong += [f"{path}: {problem}" for _, problem in shape_problems(meta, *arrays, dim)]
    problems = []
    if missing:
        problems.append(
            f"{len(missing)} of {len(urls)} shard(s) have no ROI sidecar:\n  {_listed(missing)}\n"
            "Write them with `alignclip rois convert-vinvl` (detector outputs) or "
            "`alignclip rois oracle DATA_DIR` (the embedded dataset), or point "
            "--softclip-rois at the directory that holds them."
        )
    if wrong:
        problems.append(f"unusable ROI sidecars:\n  {_listed(wrong)}")
    if problems:
        raise RoiDataError("\n".join(problems))
    return paths


def _listed(items: Sequence[str], shown: int = 10) -> str:
    more = f"\n  ... and {len(items) - shown} more" if len(items) > shown else ""
    return "\n  ".join(items[:shown]) + more


@dataclass(frozen=True)
class Fault:
    """One problem: the file, where in it (``line 7``, ``row 6``), the sample key."""

    file: Path
    problem: str
    where: str | None = None
    key: str | None = None

    def __str__(self) -> str:
        at = "".join(
            [f", {self.where}" if self.where else "", f", key {self.key!r}" if self.key else ""]
        )
        return f"{self.file}{at}: {self.problem}"


@dataclass
class Verification:
    """What :func:`verify_sidecars` found."""

    shards: int = 0
    samples: int = 0
    faults: list[Fault] | None = None
    damaged: list[Path] | None = None  # sidecars with at least one fault

    @property
    def ok(self) -> bool:
        return not self.faults


def verify_sidecars(
    root: str | os.PathLike | None,
    urls: Sequence[str],
    dim: int = ROI_DIM,
    progress: bool = True,
) -> Verification:
    """Verify the sidecar of every shard in ``urls`` (see the module docstring)."""
    result = Verification(shards=len(urls), faults=[], damaged=[])
    paths = [sidecar_path(root, url) for url in urls]
    total = 0
    for path in paths:
        try:
            total += read_meta(path)["num_samples"] if is_complete(path) else 0
        except RoiDataError:
            pass
    with tqdm(total=total, unit="sample", desc="rois check", disable=not progress) as bar:
        for url, path in zip(urls, paths):
            faults = verify_sidecar(path, url, dim, bar)
            if faults:
                result.faults.extend(faults)
                result.damaged.append(path)
            else:
                result.samples += read_meta(path)["num_samples"]
    return result


def verify_sidecar(
    path: Path, url: str | None = None, dim: int = ROI_DIM, bar: tqdm | None = None
) -> list[Fault]:
    """The faults of one sidecar directory (empty: training reads it without a problem)."""
    if not is_complete(path):
        return [
            Fault(
                path,
                f"missing (no meta.json): write it with `alignclip rois convert-vinvl` or "
                f"`alignclip rois oracle`{f' for shard {url}' if url else ''}",
            )
        ]
    try:
        meta = read_meta(path)
    except RoiFileError as e:
        return [Fault(path / "meta.json", e.problem)]
    except RoiDataError as e:  # another format version
        return [Fault(path / "meta.json", str(e))]
    faults: list[Fault] = []
    arrays = {}
    for name in ARRAY_FILES:
        try:
            arrays[name] = load_array(path, name, mmap=name != "counts.npy")
        except RoiFileError as e:
            faults.append(Fault(path / name, e.problem))
    keys = _verify_samples(path, meta, arrays.get("counts.npy"), faults)
    if len(arrays) == len(ARRAY_FILES):
        shapes = shape_problems(meta, *(arrays[n] for n in ARRAY_FILES), dim)
        faults += [Fault(path / name, problem) for name, problem in shapes]
        if not shapes:
            faults += _verify_finite(path, arrays["features.npy"], arrays["counts.npy"], keys, bar)
    # (a line that did not parse has no key: "no row" would only repeat that fault)
    if url and is_local(url) and Path(url).is_file() and keys is not None and None not in keys:
        faults += _verify_shard_keys(path, url, keys)
    return faults


def _verify_samples(
    path: Path, meta: dict, counts: np.ndarray | None, faults: list[Fault]
) -> list[str | None] | None:
    """Check every ``samples.jsonl`` line; returns the key of each row (None: unreadable)."""
    file = path / SAMPLES_FILE
    keys: list[str | None] = []
    lines: dict[str, int] = {}
    try:
        for number, line in iter_sample_lines(path):
            try:
                key, tags = parse_sample_line(line)
            except ValueError as e:
                faults.append(Fault(file, str(e), f"line {number}"))
                keys.append(None)
                continue
            if key in lines:
                faults.append(Fault(file, f"repeats line {lines[key]}", f"line {number}", key))
            lines.setdefault(key, number)
            row = number - 1
            if counts is not None and row < len(counts) and len(tags) != int(counts[row]):
                faults.append(
                    Fault(
                        file,
                        f"{len(tags)} tags for {int(counts[row])} ROIs (counts.npy)",
                        f"line {number}",
                        key,
                    )
                )
            keys.append(key)
    except RoiFileError as e:
        faults.append(Fault(file, e.problem))
        return None
    n = meta["num_samples"]
    if len(keys) != n:
        faults.append(Fault(file, f"{len(keys)} lines for {n} samples (meta.json)"))
    return keys


def _verify_finite(
    path: Path,
    features: np.ndarray,
    counts: np.ndarray,
    keys: list[str | None] | None,
    bar: tqdm | None,
) -> list[Fault]:
    """Stream the stored ROI slots (those below each sample's count) in row blocks."""
    faults = []
    n = len(features)
    block = max(1, BLOCK_BYTES // max(1, features[0].nbytes if n else 1))
    slots = np.arange(features.shape[1])
    for start in range(0, n, block):
        stop = min(n, start + block)
        try:
            bad = nonfinite_slots(np.asarray(features[start:stop]))
        except OSError as e:  # a read error of the file system
            faults.append(Fault(path / "features.npy", f"unreadable ({e})", f"rows {start}-"))
            break
        bad &= slots[None, :] < counts[start:stop, None]
        for offset in np.flatnonzero(bad.any(axis=1)):
            row = start + int(offset)
            key = keys[row] if keys is not None and row < len(keys) else None
            faults.append(
                Fault(
                    path / "features.npy",
                    f"{int(bad[offset].sum())} ROI vector(s) hold NaN or inf (training leaves "
                    "this sample's ROIs out)",
                    f"row {row} ({SAMPLES_FILE} line {row + 1})",
                    key,
                )
            )
        if bar is not None:
            bar.update(stop - start)
    return faults


def _verify_shard_keys(path: Path, url: str, keys: list[str | None]) -> list[Fault]:
    try:
        in_shard = shard_keys(url)
    except ValueError as e:
        return [Fault(Path(url), str(e))]
    have = {k for k in keys if k is not None}
    lacking = [k for k in in_shard if k not in have]
    if not lacking:
        return []
    shown = ", ".join(repr(k) for k in lacking[:5]) + (", ..." if len(lacking) > 5 else "")
    return [
        Fault(
            path / SAMPLES_FILE,
            f"{len(lacking)} sample(s) of shard {url} have no row ({shown}); training stops at "
            f"the first of them: the sidecar was written for other shard contents",
        )
    ]


def format_verification(result: Verification, shown: int = 50) -> str:
    """The report ``alignclip rois check`` prints."""
    if result.ok:
        return (
            f"{result.shards} shard(s), {result.samples} samples: every ROI sidecar is complete "
            "and readable (array shapes, every samples.jsonl line and shard key, every ROI "
            "vector finite)"
        )
    lines = [
        f"{len(result.faults)} fault(s) in {len(result.damaged)} of {result.shards} ROI sidecar(s):"
    ]
    lines += [f"  {fault}" for fault in result.faults[:shown]]
    if len(result.faults) > shown:
        lines.append(f"  ... and {len(result.faults) - shown} more")
    lines.append(f"To fix a damaged sidecar, {rewrite_hint()}.")
    return "\n".join(lines)
