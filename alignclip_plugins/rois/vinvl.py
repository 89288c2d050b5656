"""VinVL / Oscar detector outputs (TSV) to ROI sidecars, joined to webdataset shards by key.

Inputs (docs/softclip.md, "ROI features on real data: VinVL"):

* VinVL ``predictions.tsv`` (scene_graph_benchmark's ``test_sg_net.py`` with
  ``TEST.OUTPUT_FEATURE True``): ``image_key \\t {"objects": [{"rect": [x1, y1, x2, y2]
  (pixels), "class", "conf", "feature": base64 float32[2048], "attributes": [...],
  "attr_scores": [...]}, ...]}`` (``attr`` / ``attr_conf`` also accepted; a bare JSON
  list of objects too, as Oscar's ``label.tsv``);
* optionally an Oscar-style features TSV whose i-th vector belongs to the i-th object of
  the same key: ``key \\t num_boxes \\t base64 float32[num_boxes x D]`` or
  ``key \\t {"num_boxes": n, "features": base64}``, D = 2048, 2052 (+ x1, y1, x2, y2 in
  [0, 1]) or 2054 (+ those and the box width and height);
* optionally VinVL's ``hw.tsv`` (``key \\t [{"height": H, "width": W}]``) for the image sizes;
  otherwise sizes come from the rows (``image_h`` / ``image_w``), the feature's box values,
  or the shard's image headers.

Each sample keeps its ``max_rois`` most confident objects: the 2048 appearance values and
the box ``(x1/W, y1/H, x2/W, y2/H)`` clipped to [0, 1] (2052 values), the confidence, and
the tag "attribute class" (the object's best-scored attribute, if any, then its class).
Keys must equal the webdataset ``__key__``; a TSV key with a directory or an extension
(``images/000123.jpg``) also matches ``000123``.

Bad rows (unparsable JSON or base64, wrong feature sizes, objects and features that do
not pair up) are reported with file and line number and skipped: their samples have no
ROIs (SoftCLIP trains them with hard labels). Finished shards are skipped on a rerun and
the TSV key index is cached in ``OUT/.tsv-index/``, so an interrupted conversion resumes.
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from alignclip_plugins.io.atomic import atomic_write_text
from alignclip_plugins.io.shards import iter_samples, local_shard
from alignclip_plugins.rois.storage import (
    APPEARANCE_DIM,
    DEFAULT_MAX_ROIS,
    ROI_DIM,
    RoiDataError,
    SidecarWriter,
    is_complete,
    read_meta,
    remove_temporaries,
    sidecar_path,
)
from alignclip_plugins.rois.tsv import NO_TAB, TsvSet

log = logging.getLogger(__name__)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp")  # members whose header gives the image size
FEATURE_DIMS = (APPEARANCE_DIM, APPEARANCE_DIM + 4, APPEARANCE_DIM + 6)
NO_ATTRIBUTE = ("", "__no_attribute__", "__background__")
INDEX_DIR = ".tsv-index"
SUMMARY_FILE = "convert-vinvl-summary.json"
MISSING_META = "samples_missing_in_tsvs"  # meta.json: samples with no predictions row
PRINTED_BAD_ROWS = 20


class BadRow(ValueError):
    """A TSV row that cannot be used (the message says why)."""


def _decode_floats(text: str, what: str) -> np.ndarray:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError, TypeError) as e:
        raise BadRow(f"{what} is not valid base64 ({e})") from None
    if len(raw) % 4:
        raise BadRow(f"{what} holds {len(raw)} bytes, not a float32 array")
    return np.frombuffer(raw, dtype=np.float32)


def parse_predictions(row: bytes) -> tuple[list[dict], tuple[float, float] | None]:
    """Objects of a predictions / labels row and the image size (H, W) if the row has it."""
    try:
        data = json.loads(row)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadRow(f"not JSON ({e})") from None
    if isinstance(data, list):
        return data, None
    if not isinstance(data, dict) or not isinstance(data.get("objects"), list):
        raise BadRow('expected {"objects": [...]} or a list of objects')
    h = data.get("image_h", data.get("height"))
    w = data.get("image_w", data.get("width"))
    return data["objects"], (float(h), float(w)) if h and w else None


def parse_features(row: bytes) -> np.ndarray:
    """(num_boxes, D) float32 of an Oscar-style features row (3-column or JSON form)."""
    parts = row.split(b"\t")
    try:
        if len(parts) >= 2:
            n, text = int(parts[0]), parts[1].decode("ascii")
        else:
            data = json.loads(parts[0])
            n, text = int(data["num_boxes"]), data["features"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        raise BadRow(f"not a features row ({type(e).__name__}: {e})") from None
    flat = _decode_floats(text, "features")
    if n < 0 or (n == 0 and flat.size) or (n and flat.size % n):
        raise BadRow(f"{flat.size} values for {n} boxes")
    feats = flat.reshape(n, -1) if n else flat.reshape(0, APPEARANCE_DIM)
    if n and feats.shape[1] not in FEATURE_DIMS:
        raise BadRow(f"feature size {feats.shape[1]}, expected one of {FEATURE_DIMS}")
    return feats


def parse_hw(row: bytes) -> tuple[float, float]:
    """(H, W) of a VinVL ``hw.tsv`` row."""
    try:
        data = json.loads(row)
        if isinstance(data, list):
            data = data[0]
        return float(data["height"]), float(data["width"])
    except (ValueError, KeyError, TypeError, IndexError) as e:
        raise BadRow(f"not an image-size row ({type(e).__name__}: {e})") from None


def object_tag(obj: dict) -> str:
    """ "attribute class": the best-scored attribute (if any) and the class."""
    cls = str(obj.get("class", "")).strip()
    if not cls:
        raise BadRow("an object has no class")
    attrs = obj.get("attributes", obj.get("attr")) or []
    scores = obj.get("attr_scores", obj.get("attr_conf")) or []
    if isinstance(attrs, str):
        attrs = [attrs]
    ranked = sorted(
        range(len(attrs)),
        key=lambda i: -float(scores[i]) if i < len(scores) else 0.0,
    )
    for i in ranked:
        attr = str(attrs[i]).strip()
        if attr not in NO_ATTRIBUTE:
            return f"{attr} {cls}"
    return cls


def object_vector(
    obj: dict, feature: np.ndarray | None, size: tuple[float, float] | None
) -> np.ndarray:
    """The 2052-d ROI vector of one object (appearance + normalised box)."""
    if feature is None:
        if "feature" not in obj:
            raise BadRow("an object has no 'feature' (pass the features TSV with --features)")
        feature = _decode_floats(obj["feature"], "feature")
    if feature.size not in FEATURE_DIMS:
        raise BadRow(f"feature size {feature.size}, expected one of {FEATURE_DIMS}")
    rect = obj.get("rect")
    if rect is not None and size is not None:
        if len(rect) != 4:
            raise BadRow(f"rect {rect!r} is not [x1, y1, x2, y2]")
        h, w = size
        box = np.asarray(rect, dtype=np.float64) / np.array([w, h, w, h])
    elif feature.size > APPEARANCE_DIM:
        box = feature[APPEARANCE_DIM : APPEARANCE_DIM + 4].astype(np.float64)
    else:
        raise BadRow("2048-d feature with no image size to normalise its rect (pass --hw)")
    box = np.clip(box, 0.0, 1.0)
    return np.concatenate([feature[:APPEARANCE_DIM], box]).astype(np.float32)


def sample_rois(
    prediction: bytes, features: bytes | None, size: tuple[float, float] | None
) -> tuple[np.ndarray, list[float], list[str]]:
    """(features (n, 2052), confidences, tags) of one image's rows."""
    objects, row_size = parse_predictions(prediction)
    size = row_size or size
    feats = parse_features(features) if features is not None else None
    if feats is not None and len(feats) != len(objects):
        raise BadRow(f"{len(objects)} objects but {len(feats)} feature vectors")
    vectors, confidences, tags = [], [], []
    for i, obj in enumerate(objects):
        if not isinstance(obj, dict):
            raise BadRow(f"object {i} is not a JSON object")
        vectors.append(object_vector(obj, None if feats is None else feats[i], size))
        conf = obj.get("conf", obj.get("score", 1.0))
        try:
            confidences.append(float(conf))
        except (TypeError, ValueError):
            raise BadRow(f"object {i} has confidence {conf!r}") from None
        tags.append(object_tag(obj))
    if not vectors:
        return np.zeros((0, ROI_DIM), dtype=np.float32), [], []
    stacked = np.stack(vectors)
    if not np.isfinite(stacked).all() or not np.isfinite(confidences).all():
        raise BadRow("NaN or inf in the features or confidences")
    return stacked, confidences, tags


@dataclass
class ConversionReport:
    """What a conversion did (shards, samples, keys missing from the TSVs, bad rows)."""

    shards_written: int = 0
    shards_skipped: int = 0
    samples: int = 0
    missing: int = 0
    without_rois: int = 0
    bad_rows: list[dict] = field(default_factory=list)
    sidecars: list[Path] = field(default_factory=list)  # of every shard, written or skipped

    def as_dict(self) -> dict:
        """The counts (``bad_rows``: how many)."""
        counts = {k: v for k, v in self.__dict__.items() if k not in ("bad_rows", "sidecars")}
        return {**counts, "bad_rows": len(self.bad_rows)}


def update_summary(path: str | os.PathLike, report: ConversionReport) -> dict:
    """Add this run to the summary file ``path`` and recompute its totals; returns it.

    The summary lists every sidecar converted into its directory by any run; ``total``
    (shards, samples, keys missing from the TSVs, bad rows, samples without ROIs) is
    re-read from those sidecars' ``meta.json``, so a rerun that skips finished shards, or
    rewrites a deleted one, keeps the counts of the whole conversion. ``last_run`` and
    ``runs`` hold each run's own counts; ``bad_row_list`` every bad row of the total.
    """
    path = Path(path)
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = {}
    if not isinstance(previous, dict):
        previous = {}
    if "runs" in previous:
        runs, listed = list(previous["runs"]), list(previous.get("sidecars", []))
    else:  # a summary of an older version: its counts were one run's
        runs = [{k: v for k, v in previous.items() if k != "bad_row_list"}] if previous else []
        listed = []
    finished = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    run = {"finished": finished, **report.as_dict()}
    runs.append(run)
    here = [os.path.relpath(p, path.parent) for p in report.sidecars]
    total = {"shards": 0, "samples": 0, "missing": 0, "bad_rows": 0, "without_rois": 0}
    bad_rows: list[dict] = []
    kept = []
    for name in dict.fromkeys(listed + here):
        try:
            meta = read_meta(path.parent / name)
        except RoiDataError:
            continue  # deleted since: no longer part of the conversion
        kept.append(name)
        rows = meta.get("bad_rows") or []
        total["shards"] += 1
        total["samples"] += int(meta["num_samples"])
        total["missing"] += int(meta.get(MISSING_META, 0))
        total["bad_rows"] += len(rows)
        total["without_rois"] += int(meta.get("samples_without_rois", 0))
        bad_rows += rows
    summary = {
        "total": total,
        "last_run": run,
        "runs": runs,
        "sidecars": kept,
        "bad_row_list": bad_rows,
    }
    atomic_write_text(path, json.dumps(summary, indent=1) + "\n")
    return summary


def _image_size(members: dict[str, bytes]) -> tuple[float, float] | None:
    for ext in IMAGE_EXTS:
        if ext in members:
            try:
                w, h = Image.open(io.BytesIO(members[ext])).size
            except Exception:  # an unreadable image: its rects cannot be normalised
                return None
            return float(h), float(w)
    return None


class Converter:
    """Joins detector TSVs to shards; one sidecar per shard (see the module docstring)."""

    def __init__(
        self,
        predictions: Sequence[str | os.PathLike],
        *,
        features: Sequence[str | os.PathLike] = (),
        hw: Sequence[str | os.PathLike] = (),
        out: str | os.PathLike | None = None,
        max_rois: int = DEFAULT_MAX_ROIS,
        progress: bool = True,
        image_sizes: bool = True,
    ) -> None:
        self.out = None if out is None else Path(out)
        cache = None if self.out is None else self.out / INDEX_DIR
        self.progress = progress
        self.predictions = TsvSet(predictions, cache, progress)
        self.features = TsvSet(features, cache, progress) if features else None
        self.hw = TsvSet(hw, cache, progress) if hw else None
        self.max_rois = max_rois
        self.image_sizes = image_sizes and self.hw is None
        self.report = ConversionReport()

    def _bad(self, where: str, key: str, reason: str) -> None:
        file, _, line = where.rpartition(":")
        self.report.bad_rows.append({"file": file, "line": int(line), "key": key, "reason": reason})
        if len(self.report.bad_rows) <= PRINTED_BAD_ROWS:
            log.warning("%s: key %r skipped: %s", where, key, reason)

    def _size(self, key: str, members: dict) -> tuple[float, float] | None:
        if self.hw is not None:
            found = self.hw.read(key)
            if found is None:
                return None
            if found[0] is None:
                self._bad(found[1], key, f"hw TSV: {NO_TAB}")
                return None
            try:
                return parse_hw(found[0])
            except BadRow as e:
                self._bad(found[1], key, str(e))
                return None
        return _image_size(members) if self.image_sizes else None

    def _sample(self, key: str, members: dict) -> tuple[np.ndarray, list[float], list[str]]:
        empty = (np.zeros((0, ROI_DIM), dtype=np.float32), [], [])
        found = self.predictions.read(key)
        if found is None:
            self.report.missing += 1
            return empty
        prediction, where = found
        if prediction is None:
            self._bad(where, key, NO_TAB)
            return empty
        feature_row = None
        if self.features is not None:
            frow = self.features.read(key)
            if frow is None:
                self._bad(where, key, "no row for this key in the features TSV")
                return empty
            if frow[0] is None:
                self._bad(frow[1], key, f"features TSV: {NO_TAB}")
                return empty
            feature_row = frow[0]
        try:
            return sample_rois(prediction, feature_row, self._size(key, members))
        except BadRow as e:
            self._bad(where, key, str(e))
            return empty

    def convert_shard(self, shard: str | os.PathLike) -> Path | None:
        """Write the sidecar of one shard; None when it already exists (skipped)."""
        path = local_shard(str(shard))
        target = sidecar_path(self.out, path)
        self.report.sidecars.append(target)
        if is_complete(target):
            self.report.shards_skipped += 1
            return None
        if target.parent.is_dir():
            remove_temporaries(target.parent)
        exts = IMAGE_EXTS if self.image_sizes else ()
        keys = [key for key, _ in iter_samples(path)]
        first_bad, first_missing = len(self.report.bad_rows), self.report.missing
        with SidecarWriter(
            target.parent, path.name, len(keys), max_rois=self.max_rois, source="vinvl"
        ) as writer:
            for key, members in iter_samples(path, exts):
                feats, conf, tags = self._sample(key, members)
                writer.add(key, feats, conf, tags)
                self.report.samples += 1
                self.report.without_rois += int(len(feats) == 0)
            done = writer.commit(
                bad_rows=self.report.bad_rows[first_bad:],
                **{MISSING_META: self.report.missing - first_missing},
            )
        self.report.shards_written += 1
        return done

    def run(self, shards: Sequence[str]) -> ConversionReport:
        with tqdm(total=len(shards), unit="shard", desc="convert-vinvl",
                  disable=not self.progress) as bar:  # fmt: skip
            for shard in shards:
                self.convert_shard(shard)
                bar.update(1)
                bar.set_postfix(samples=self.report.samples, bad=len(self.report.bad_rows))
        self.predictions.close()
        for tsvs in (self.features, self.hw):
            if tsvs is not None:
                tsvs.close()
        if len(self.report.bad_rows) > PRINTED_BAD_ROWS:
            log.warning("... %d more bad rows (all listed in the sidecars' meta.json and in %s)",
                        len(self.report.bad_rows) - PRINTED_BAD_ROWS, SUMMARY_FILE)  # fmt: skip
        return self.report
