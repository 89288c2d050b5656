"""ROI features and tags on disk: one sidecar directory per webdataset shard.

For the shard ``train-000003.tar`` the sidecar in a storage root ``ROOT`` is::

    ROOT/train-000003.rois/
        meta.json         {"format", "shard", "num_samples", "max_rois", "dim", "source", ...}
        features.npy      float16 (n, K, D): ROI vectors, by confidence (highest first),
                          zero-padded after the sample's count; D = 2052 = 2048 appearance
                          + 4 box coordinates (x1, y1, x2, y2) normalised to [0, 1]
        confidences.npy   float16 (n, K), 0 for padding
        counts.npy        uint8 (n,): how many of the K slots are ROIs
        samples.jsonl     line i: {"key": sample key of row i, "tags": ["attribute class", ...]}

``ROOT`` defaults to the shard's own directory (sidecars next to the shards). A sidecar
directory is written under a temporary name and renamed when complete, so one that exists
is complete; writers skip it on a rerun. Readers memory-map ``features.npy``: nothing loads
a shard's (let alone a dataset's) features into memory, only the rows of the samples read.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from alignclip_plugins.io.atomic import (
    make_temporary_directory,
    publish_directory,
    remove_stale_temporaries,
)
from alignclip_plugins.io.shards import ShardNameError, is_local, shard_stem

FORMAT = 1
ROI_DIM = 2052  # 2048 appearance + 4 box coordinates
APPEARANCE_DIM = 2048
DEFAULT_MAX_ROIS = 10
SIDECAR_SUFFIX = ".rois"
MAX_ROIS_LIMIT = 255  # counts are uint8
SAMPLES_FILE = "samples.jsonl"
ARRAY_FILES = ("features.npy", "confidences.npy", "counts.npy")


class RoiDataError(ValueError):
    """Unusable ROI data; the message names the file or shard (and sample key) and what to do."""


class RoiFileError(RoiDataError):
    """A missing, truncated or damaged file of a sidecar: ``file`` and ``problem``."""

    def __init__(self, file: str | os.PathLike, problem: str | None = None) -> None:
        if problem is None:  # re-created from its message alone (a DataLoader worker's error)
            super().__init__(str(file))
            self.file, self.problem = None, str(file)
            return
        self.file, self.problem = Path(file), problem
        super().__init__(f"{file}: {problem}; {rewrite_hint(self.file.parent)}")


class NonFiniteRois(RoiDataError):
    """A sample whose stored ROI vectors hold NaN or inf."""


@dataclass(frozen=True)
class RoiSample:
    """The ROIs of one sample: ``features`` (n, D) float16, ``confidences`` (n,), ``tags``."""

    key: str
    features: np.ndarray
    confidences: np.ndarray
    tags: list[str]

    @property
    def tag_sentence(self) -> str:
        """SoftCLIP's tag sentence: the tags joined with ", "."""
        return ", ".join(self.tags)


def sidecar_path(root: str | os.PathLike | None, url: str | os.PathLike) -> Path:
    """The sidecar directory of shard ``url`` in ``root`` (default: the shard's directory)."""
    url = str(url)
    if root is None:
        if not is_local(url):
            raise RoiDataError(
                f"shard {url} is not a local file: give the ROI storage directory with "
                "--softclip-rois DIR"
            )
        root = Path(url).parent
    try:
        stem = shard_stem(url)
    except ShardNameError as e:
        raise RoiDataError(str(e)) from None
    return Path(root) / f"{stem}{SIDECAR_SUFFIX}"


def rewrite_hint(path: str | os.PathLike | None = None) -> str:
    """What to do about a damaged sidecar directory ``path`` (None: any)."""
    what = f"delete {path}" if path is not None else "delete its directory"
    return (
        f"{what} and rerun the command that wrote it (`alignclip rois convert-vinvl` or "
        "`alignclip rois oracle`; they skip the shards that still have a sidecar)"
    )


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a finished sidecar directory (it has its ``meta.json``)."""
    return (Path(path) / "meta.json").is_file()


def read_meta(path: str | os.PathLike) -> dict:
    """The ``meta.json`` of sidecar ``path``, checked (format version, sample count)."""
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoiDataError(f"ROI sidecar {path} is missing (no {path / 'meta.json'})") from None
    except (ValueError, OSError) as e:
        raise RoiFileError(path / "meta.json", f"unreadable ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise RoiDataError(
            f"ROI sidecar {path} has format {found!r}; this version reads format "
            f"{FORMAT}: delete it and convert again"
        )
    if not isinstance(meta.get("num_samples"), int) or meta["num_samples"] < 0:
        raise RoiFileError(path / "meta.json", "no valid 'num_samples'")
    return meta


def load_array(path: str | os.PathLike, name: str, mmap: bool = True) -> np.ndarray:
    """Array file ``name`` of sidecar ``path`` (memory-mapped unless ``mmap`` is False).

    A missing, truncated or damaged file raises :class:`RoiFileError` naming it.
    """
    file = Path(path) / name
    try:
        return np.load(file, mmap_mode="r" if mmap else None, allow_pickle=False)
    except FileNotFoundError:
        raise RoiFileError(file, "missing") from None
    except (ValueError, OSError, EOFError) as e:
        raise RoiFileError(file, f"truncated or damaged ({e})") from None


def shape_problems(
    meta: dict,
    features: np.ndarray,
    confidences: np.ndarray,
    counts: np.ndarray,
    dim: int | None = ROI_DIM,
) -> list[tuple[str, str]]:
    """``(file name, problem)`` for every array whose shape, type or values disagree with
    ``meta.json`` (``num_samples`` n, ``max_rois`` K) and ``dim``: features (n, K, dim)
    float16, confidences (n, K), counts (n,) uint8 with every count <= K."""
    n, k = meta["num_samples"], meta.get("max_rois")
    out: list[tuple[str, str]] = []
    if features.ndim != 3:
        out.append(("features.npy", f"shape {features.shape}, expected (n, K, D)"))
    else:
        if dim is not None and (features.shape[2] != dim or meta.get("dim", dim) != dim):
            out.append(("features.npy", f"vectors of size {features.shape[2]}, expected {dim}"))
        if features.shape[0] != n:
            out.append(("features.npy", f"{features.shape[0]} rows, meta.json says {n} samples"))
        if k is not None and features.shape[1] != k:
            out.append(("features.npy", f"{features.shape[1]} ROI slots, meta.json says {k}"))
        if features.dtype != np.float16:
            out.append(("features.npy", f"dtype {features.dtype}, expected float16"))
    slots = features.shape[1] if features.ndim == 3 else k
    if confidences.shape != (n, slots):
        out.append(("confidences.npy", f"shape {confidences.shape}, expected {(n, slots)}"))
    if counts.shape != (n,) or counts.dtype != np.uint8:
        out.append(("counts.npy", f"shape {counts.shape} {counts.dtype}, expected ({n},) uint8"))
    elif n and slots is not None and int(counts.max()) > slots:
        row = int(np.argmax(counts > slots))
        out.append(("counts.npy", f"row {row} counts {int(counts[row])} ROIs in {slots} slots"))
    return out


def parse_sample_line(line: str) -> tuple[str, list[str]]:
    """``(key, tags)`` of one ``samples.jsonl`` line; ValueError saying what is wrong."""
    try:
        record = json.loads(line)
    except ValueError as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(record, dict):
        raise ValueError('expected {"key": ..., "tags": [...]}')
    key, tags = record.get("key"), record.get("tags")
    if not isinstance(key, str) or not key:
        raise ValueError(f"'key' must be a non-empty string, got {key!r}")
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"'tags' of key {key!r} must be a list of strings")
    return key, tags


def iter_sample_lines(path: str | os.PathLike) -> Iterator[tuple[int, str]]:
    """``(line number, text)`` of every line of a sidecar's ``samples.jsonl``."""
    file = Path(path) / SAMPLES_FILE
    try:
        with open(file, encoding="utf-8") as f:
            yield from enumerate(f, start=1)
    except FileNotFoundError:
        raise RoiFileError(file, "missing") from None
    except (OSError, UnicodeDecodeError) as e:
        raise RoiFileError(file, f"unreadable ({e})") from None


def nonfinite_slots(features: np.ndarray) -> np.ndarray:
    """Per ROI slot of float16 ``features`` (..., D), whether its vector holds NaN or inf.

    An integer test (all exponent bits set), no float conversion: cheap enough per sample.
    """
    return ((features.view(np.uint16) & 0x7C00) == 0x7C00).any(axis=-1)


class SidecarReader:
    """One shard's ROI sidecar: key lookup over memory-mapped features.

    Opening it checks what every lookup relies on (array files complete and of the right
    shapes, every ``samples.jsonl`` line); a fault raises :class:`RoiDataError` naming the
    file (and line, key). Vectors are checked for NaN / inf when a sample is read.
    """

    def __init__(self, path: str | os.PathLike, dim: int | None = ROI_DIM) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.shard = self.meta.get("shard", self.path.name)
        self.features = load_array(self.path, "features.npy", mmap=True)
        self.confidences = load_array(self.path, "confidences.npy", mmap=True)
        self.counts = load_array(self.path, "counts.npy", mmap=False)
        problems = shape_problems(self.meta, self.features, self.confidences, self.counts, dim)
        if problems:
            name, problem = problems[0]
            raise RoiDataError(
                f"ROI sidecar {self.path} (shard {self.shard}): {name}: {problem}; "
                f"{rewrite_hint(self.path)}"
            )
        n = int(self.meta["num_samples"])
        self.keys: list[str] = []
        self.tags: list[list[str]] = []
        self.index: dict[str, int] = {}
        file = self.path / SAMPLES_FILE
        for number, line in iter_sample_lines(self.path):
            try:
                key, tags = parse_sample_line(line)
            except ValueError as e:
                raise RoiDataError(
                    f"{file}, line {number}: {e}; {rewrite_hint(self.path)}"
                ) from None
            if key in self.index:
                raise RoiDataError(
                    f"{file}, line {number}: key {key!r} repeats line {self.index[key] + 1}; "
                    f"{rewrite_hint(self.path)}"
                )
            self.index[key] = len(self.keys)
            self.keys.append(key)
            self.tags.append(tags)
        if len(self.keys) != n:
            raise RoiDataError(
                f"{file}: {len(self.keys)} lines for {n} samples (meta.json); "
                f"{rewrite_hint(self.path)}"
            )

    def __len__(self) -> int:
        return len(self.keys)

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def _row(self, key: str) -> int:
        row = self.index.get(key)
        if row is None:
            raise RoiDataError(
                f"sample {key!r} of shard {self.shard} has no row in its ROI sidecar "
                f"{self.path}: the sidecar was written for other shard contents; write it again"
            )
        return row

    def _check_finite(self, key: str, row: int, feats: np.ndarray) -> None:
        bad = nonfinite_slots(feats)
        if bad.any():
            raise NonFiniteRois(
                f"sample {key!r} of shard {self.shard}: {int(bad.sum())} ROI vector(s) hold "
                f"NaN or inf ({self.path / 'features.npy'}, row {row}); fix or convert the "
                "detector outputs again"
            )

    def padded(self, key: str, max_rois: int) -> tuple[np.ndarray, int, list[str]]:
        """(features (max_rois, D) float16 zero-padded, ROI count, tags) of sample ``key``.

        The training fast path: one copy of the sample's rows, an integer NaN/inf test
        (:class:`NonFiniteRois` when it fails).
        """
        row = self._row(key)
        n = min(int(self.counts[row]), max_rois)
        stored = min(max_rois, self.features.shape[1])
        feats = np.array(self.features[row, :stored])
        feats[n:] = 0
        if stored < max_rois:
            feats = np.concatenate(
                [feats, np.zeros((max_rois - stored, feats.shape[1]), feats.dtype)]
            )
        self._check_finite(key, row, feats[:n])
        return feats, n, self.tags[row][:n]

    def get(self, key: str, max_rois: int | None = None) -> RoiSample:
        """The (at most ``max_rois``) highest-confidence ROIs of sample ``key``.

        Raises :class:`RoiDataError` naming shard and key when the sample has no row or its
        features are not finite.
        """
        row = self._row(key)
        n = int(self.counts[row])
        if max_rois is not None:
            n = min(n, max_rois)
        feats = np.array(self.features[row, :n])  # copy only this sample's rows
        self._check_finite(key, row, feats)
        return RoiSample(
            key, feats, np.array(self.confidences[row, :n], dtype=np.float32), self.tags[row][:n]
        )


def prepare_rois(
    features: np.ndarray,
    confidences: Sequence[float],
    tags: Sequence[str],
    *,
    max_rois: int,
    dim: int = ROI_DIM,
    where: str = "",
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate one sample's ROIs and keep the ``max_rois`` most confident, highest first.

    ``features`` (n, dim), ``confidences`` (n,), ``tags`` (n,). Ties keep the input order.
    """
    feats = np.asarray(features, dtype=np.float32)
    if feats.ndim == 1 and feats.size == 0:
        feats = feats.reshape(0, dim)
    conf = np.asarray(confidences, dtype=np.float32).reshape(-1)
    if feats.ndim != 2 or feats.shape[1] != dim:
        raise RoiDataError(f"{where}: ROI features of shape {feats.shape}, expected (n, {dim})")
    if not (len(feats) == len(conf) == len(tags)):
        raise RoiDataError(
            f"{where}: {len(feats)} feature vectors, {len(conf)} confidences, {len(tags)} tags"
        )
    if not np.isfinite(feats).all() or not np.isfinite(conf).all():
        raise RoiDataError(f"{where}: ROI features or confidences hold NaN or inf")
    order = np.argsort(-conf, kind="stable")[:max_rois]
    return feats[order], conf[order], [str(tags[i]) for i in order]


class SidecarWriter:
    """Writes one shard's sidecar row by row into a temporary directory, then renames it.

    ``num_samples`` rows must be added (in any key order) before :meth:`commit`. Used as a
    context manager, an exception removes the temporary directory.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        shard: str,
        num_samples: int,
        *,
        max_rois: int = DEFAULT_MAX_ROIS,
        dim: int = ROI_DIM,
        source: str = "",
    ) -> None:
        if not 1 <= max_rois <= MAX_ROIS_LIMIT:
            raise ValueError(f"max_rois must be in [1, {MAX_ROIS_LIMIT}], got {max_rois}")
        self.root = Path(root)
        self.shard = Path(shard).name
        self.final = self.root / f"{shard_stem(self.shard)}{SIDECAR_SUFFIX}"
        self.n, self.k, self.dim, self.source = int(num_samples), int(max_rois), int(dim), source
        self.tmp = make_temporary_directory(self.final)
        self.features = np.lib.format.open_memmap(
            self.tmp / "features.npy", mode="w+", dtype=np.float16, shape=(self.n, self.k, dim)
        )
        self.confidences = np.zeros((self.n, self.k), dtype=np.float16)
        self.counts = np.zeros(self.n, dtype=np.uint8)
        self.records: list[dict | None] = [None] * self.n
        self.rows = 0

    def add(
        self,
        key: str,
        features: np.ndarray,
        confidences: Sequence[float],
        tags: Sequence[str],
    ) -> None:
        """Add sample ``key``: its ROIs (validated, top ``max_rois`` by confidence kept)."""
        if self.rows >= self.n:
            raise RoiDataError(f"shard {self.shard}: more than {self.n} samples added")
        where = f"shard {self.shard}, sample {key!r}"
        feats, conf, tags = prepare_rois(
            features, confidences, tags, max_rois=self.k, dim=self.dim, where=where
        )
        with np.errstate(over="ignore"):
            half = feats.astype(np.float16)
        if not np.isfinite(half).all():
            raise RoiDataError(f"{where}: ROI features overflow float16 (|x| > 65504)")
        row = self.rows
        self.features[row, : len(half)] = half
        self.confidences[row, : len(conf)] = conf
        self.counts[row] = len(half)
        self.records[row] = {"key": key, "tags": tags}
        self.rows += 1

    def commit(self, **extra_meta) -> Path:
        """Finish: flush, write the index files and rename into place; returns the path."""
        if self.rows != self.n:
            raise RoiDataError(f"shard {self.shard}: {self.rows} of {self.n} samples added")
        keys = [r["key"] for r in self.records]
        if len(set(keys)) != len(keys):
            raise RoiDataError(f"shard {self.shard}: a sample key occurs twice")
        self.features.flush()
        del self.features
        np.save(self.tmp / "confidences.npy", self.confidences)
        np.save(self.tmp / "counts.npy", self.counts)
        with open(self.tmp / SAMPLES_FILE, "w", encoding="utf-8") as f:
            for record in self.records:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
        meta = {
            "format": FORMAT,
            "shard": self.shard,
            "num_samples": self.n,
            "max_rois": self.k,
            "dim": self.dim,
            "source": self.source,
            "samples_without_rois": int((self.counts == 0).sum()),
            **extra_meta,
        }
        (self.tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
        if not publish_directory(self.tmp, self.final) and not is_complete(self.final):
            raise RoiDataError(
                f"{self.final} exists but is not a complete sidecar (no meta.json): delete it "
                "and rerun"
            )  # (complete: another process finished this shard first)
        return self.final

    def abort(self) -> None:
        with contextlib.suppress(AttributeError):
            del self.features
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> SidecarWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


def write_sidecar(
    root: str | os.PathLike,
    shard: str,
    samples: Iterable[tuple[str, np.ndarray, Sequence[float], Sequence[str]]],
    num_samples: int,
    **kwargs,
) -> Path:
    """Write a whole sidecar from ``(key, features, confidences, tags)`` records."""
    extra = kwargs.pop("meta", {})
    with SidecarWriter(root, shard, num_samples, **kwargs) as writer:
        for key, feats, conf, tags in samples:
            writer.add(key, feats, conf, tags)
        return writer.commit(**extra)


def remove_temporaries(root: str | os.PathLike) -> int:
    """Delete the temporary directories of interrupted writers in ``root`` (those of live
    processes are kept); returns how many were removed."""
    return remove_stale_temporaries(root, SIDECAR_SUFFIX)
