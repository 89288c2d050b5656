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
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

FORMAT = 1
ROI_DIM = 2052  # 2048 appearance + 4 box coordinates
APPEARANCE_DIM = 2048
DEFAULT_MAX_ROIS = 10
SIDECAR_SUFFIX = ".rois"
MAX_ROIS_LIMIT = 255  # counts are uint8

_SHARD_NAME = re.compile(r"([^/\s:]+?)\.(?:tar|tar\.gz|tgz)(?=$|[\s?#'\"])")


class RoiDataError(ValueError):
    """Unusable ROI data; the message names the shard (and sample key) and what to do."""


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


def shard_stem(url: str | os.PathLike) -> str:
    """``.../train-000003.tar`` (or a ``pipe:`` command naming it) -> ``train-000003``."""
    text = str(url)
    found = _SHARD_NAME.findall(text)
    if not found:
        raise RoiDataError(
            f"cannot tell the shard name of {text!r}: ROI sidecars are matched to shards by "
            "their file name (NAME.tar, NAME.tar.gz or NAME.tgz)"
        )
    return found[-1]


def is_local(url: str) -> bool:
    return "://" not in url and not url.startswith("pipe:")


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
    return Path(root) / f"{shard_stem(url)}{SIDECAR_SUFFIX}"


def is_complete(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a finished sidecar directory (it has its ``meta.json``)."""
    return (Path(path) / "meta.json").is_file()


def read_meta(path: str | os.PathLike) -> dict:
    path = Path(path)
    try:
        meta = json.loads((path / "meta.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoiDataError(f"ROI sidecar {path} is missing (no {path / 'meta.json'})") from None
    except ValueError as e:
        raise RoiDataError(f"ROI sidecar {path}: unreadable meta.json ({e}); rewrite it") from e
    if meta.get("format") != FORMAT:
        raise RoiDataError(
            f"ROI sidecar {path} has format {meta.get('format')!r}; this version reads format "
            f"{FORMAT}: delete it and convert again"
        )
    return meta


def check_sidecars(
    root: str | os.PathLike | None, urls: Sequence[str], dim: int = ROI_DIM
) -> list[Path]:
    """The sidecar of every shard in ``urls``, checked cheaply (no features read).

    Raises :class:`RoiDataError` listing the shards whose sidecar is missing, incomplete or
    holds vectors of another size than ``dim``, with the command that writes them.
    """
    missing, wrong, paths = [], [], []
    for url in urls:
        path = sidecar_path(root, url)
        paths.append(path)
        if not is_complete(path):
            missing.append(f"{url} (expected {path})")
            continue
        meta = read_meta(path)
        shape = np.load(path / "features.npy", mmap_mode="r").shape
        if meta.get("dim") != dim or len(shape) != 3 or shape[2] != dim:
            wrong.append(f"{path}: vectors of size {shape[-1]}, expected {dim}")
        elif shape[0] != meta.get("num_samples"):
            wrong.append(f"{path}: {shape[0]} rows, meta.json says {meta.get('num_samples')}")
    problems = []
    if missing:
        listed = "\n  ".join(missing[:10]) + (
            f"\n  ... and {len(missing) - 10} more" if len(missing) > 10 else ""
        )
        problems.append(
            f"{len(missing)} of {len(urls)} shard(s) have no ROI sidecar:\n  {listed}\n"
            "Write them with `alignclip rois convert-vinvl` (detector outputs) or "
            "`alignclip rois oracle DATA_DIR` (the embedded dataset), or point "
            "--softclip-rois at the directory that holds them."
        )
    if wrong:
        problems.append("ROI sidecars with the wrong feature size:\n  " + "\n  ".join(wrong[:10]))
    if problems:
        raise RoiDataError("\n".join(problems))
    return paths


class SidecarReader:
    """One shard's ROI sidecar: key lookup over memory-mapped features."""

    def __init__(self, path: str | os.PathLike, dim: int | None = ROI_DIM) -> None:
        self.path = Path(path)
        self.meta = read_meta(self.path)
        self.shard = self.meta.get("shard", self.path.name)
        self.features = np.load(self.path / "features.npy", mmap_mode="r")
        self.confidences = np.load(self.path / "confidences.npy", mmap_mode="r")
        self.counts = np.load(self.path / "counts.npy")
        n = int(self.meta["num_samples"])
        if dim is not None and self.features.shape[2:] != (dim,):
            raise RoiDataError(
                f"ROI sidecar {self.path} (shard {self.shard}) holds vectors of size "
                f"{self.features.shape[-1]}, expected {dim}: convert the detector outputs again"
            )
        if self.features.shape[0] != n or self.counts.shape != (n,):
            raise RoiDataError(f"ROI sidecar {self.path} is inconsistent: rewrite it")
        self.keys: list[str] = []
        self.tags: list[list[str]] = []
        with open(self.path / "samples.jsonl", encoding="utf-8") as f:
            for line in f:
                record = json.loads(line)
                self.keys.append(record["key"])
                self.tags.append(record["tags"])
        if len(self.keys) != n:
            raise RoiDataError(f"ROI sidecar {self.path}: {len(self.keys)} keys for {n} rows")
        self.index = {k: i for i, k in enumerate(self.keys)}

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

    def _check_finite(self, key: str, feats: np.ndarray) -> None:
        # float16 NaN / inf: all exponent bits set (an integer test, no float conversion)
        bad = (feats.view(np.uint16) & 0x7C00) == 0x7C00
        if bad.any():
            raise RoiDataError(
                f"sample {key!r} of shard {self.shard}: {int(bad.any(axis=1).sum())} ROI "
                f"vector(s) hold NaN or inf (sidecar {self.path}); fix or convert the detector "
                "outputs again"
            )

    def padded(self, key: str, max_rois: int) -> tuple[np.ndarray, int, list[str]]:
        """(features (max_rois, D) float16 zero-padded, ROI count, tags) of sample ``key``.

        The training fast path: one copy of the sample's rows, an integer NaN/inf test.
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
        self._check_finite(key, feats[:n])
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
        self._check_finite(key, feats)
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
        self.root.mkdir(parents=True, exist_ok=True)
        self.tmp = self.root / f".{self.final.name}.{os.getpid()}.tmp"
        if self.tmp.exists():
            shutil.rmtree(self.tmp)
        self.tmp.mkdir()
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
        with open(self.tmp / "samples.jsonl", "w", encoding="utf-8") as f:
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
        for name in ("features.npy", "confidences.npy", "counts.npy", "samples.jsonl", "meta.json"):
            with open(self.tmp / name, "rb") as f:
                os.fsync(f.fileno())
        try:
            os.rename(self.tmp, self.final)
        except OSError:
            if not is_complete(self.final):
                raise
            shutil.rmtree(self.tmp)  # another process finished this shard first
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
    """Delete the temporary directories of interrupted writers in ``root``."""
    removed = 0
    for tmp in Path(root).glob(f".*{SIDECAR_SUFFIX}.*.tmp"):
        pid = tmp.name.split(".")[-2]
        if pid.isdigit() and int(pid) != os.getpid() and _alive(int(pid)):
            continue
        shutil.rmtree(tmp, ignore_errors=True)
        removed += 1
    return removed


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True
