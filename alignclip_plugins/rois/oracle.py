"""The embedded dataset's "oracle detector": ROI features and tags from the known boxes.

The synthetic generator records every object's box and name in ``KEY.json`` (``boxes`` in
pixels, exclusive ``x2, y2``; ``tags`` such as "red circle", i.e. "attribute class").
The oracle reads each image and writes, per object, a 2052-d vector through the same
storage and training path as real detector outputs:

* ``statistics(crop)``: 74 numbers in [0, 1] computed from the box's pixels only:
  the foreground fraction (pixels farther than 60 in summed RGB distance from the median
  colour of the box's border), the mean and standard deviation of the foreground RGB, the
  mean background RGB (each / 255), and the foreground mask averaged onto an 8 x 8 grid
  (the shape's silhouette);
* appearance (2048): ``relu(W s + b)`` with a fixed Gaussian ``W`` (2048 x 74, std
  ``1/sqrt(74)``) and ``b`` (std 0.1) drawn from ``numpy.random.default_rng(0x524F4931)``,
  so that, like a detector's pooled CNN features, the vector is high-dimensional,
  non-negative and mixes colour and shape;
* box (4): ``(x1, y1, x2, y2)`` divided by the image width / height.

Confidence is 1 for every object (the oracle is never wrong); objects keep the order of
``KEY.json``. The function is fixed: the same pixels and box always give the same vector.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Sequence
from functools import cache
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from alignclip_plugins.io.shards import iter_samples
from alignclip_plugins.rois.storage import (
    APPEARANCE_DIM,
    DEFAULT_MAX_ROIS,
    ROI_DIM,
    SidecarWriter,
    is_complete,
    remove_temporaries,
    sidecar_path,
)

ORACLE_SEED = 0x524F4931  # "ROI1"
GRID = 8
NUM_STATISTICS = 1 + 3 + 3 + 3 + GRID * GRID  # 74
FOREGROUND_DISTANCE = 60
DEFAULT_SPLITS = ("train", "retrieval")


@cache
def projection() -> tuple[np.ndarray, np.ndarray]:
    """The fixed ``W`` (2048, 74) and ``b`` (2048,) of the appearance vector."""
    rng = np.random.default_rng(ORACLE_SEED)
    w = rng.normal(0.0, 1.0 / np.sqrt(NUM_STATISTICS), size=(APPEARANCE_DIM, NUM_STATISTICS))
    b = rng.normal(0.0, 0.1, size=APPEARANCE_DIM)
    return w.astype(np.float32), b.astype(np.float32)


def statistics(crop: np.ndarray) -> np.ndarray:
    """The 74 colour and silhouette statistics of an (h, w, 3) uint8 box crop, in [0, 1]."""
    if crop.ndim != 3 or crop.shape[2] != 3 or crop.shape[0] < 2 or crop.shape[1] < 2:
        raise ValueError(f"a box crop must be (h >= 2, w >= 2, 3), got {crop.shape}")
    pixels = crop.astype(np.float32)
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    background = np.median(border, axis=0)
    fg = np.abs(pixels - background).sum(axis=2) > FOREGROUND_DISTANCE
    fraction = float(fg.mean())
    if fg.any():
        mean_fg, std_fg = pixels[fg].mean(axis=0), pixels[fg].std(axis=0)
    else:
        mean_fg = std_fg = np.zeros(3, dtype=np.float32)
    mean_bg = pixels[~fg].mean(axis=0) if (~fg).any() else background
    mask = Image.fromarray((fg * 255).astype(np.uint8)).resize((GRID, GRID), Image.Resampling.BOX)
    silhouette = np.asarray(mask, dtype=np.float32).reshape(-1) / 255.0
    colours = np.concatenate([mean_fg, std_fg, mean_bg]) / 255.0
    return np.concatenate([[fraction], colours, silhouette]).astype(np.float32)


def roi_vector(image: np.ndarray, box: Sequence[float]) -> np.ndarray:
    """The 2052-d oracle ROI vector of ``box`` (x1, y1, x2, y2 px, exclusive) in ``image``."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (int(round(v)) for v in box)
    x1, y1 = max(0, min(x1, w - 2)), max(0, min(y1, h - 2))
    x2, y2 = max(x1 + 2, min(x2, w)), max(y1 + 2, min(y2, h))
    weights, bias = projection()
    appearance = np.maximum(weights @ statistics(image[y1:y2, x1:x2]) + bias, 0.0)
    coords = np.array([x1 / w, y1 / h, x2 / w, y2 / h], dtype=np.float32)
    return np.concatenate([appearance, coords]).astype(np.float32)


def sample_rois(png: bytes, truth: dict) -> tuple[np.ndarray, list[float], list[str]]:
    """(features (n, 2052), confidences, tags) of one synthetic sample."""
    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
    boxes, tags = truth.get("boxes") or [], truth.get("tags") or []
    if len(boxes) != len(tags):
        raise ValueError(f"{len(boxes)} boxes but {len(tags)} tags")
    feats = np.stack([roi_vector(image, b) for b in boxes]) if boxes else np.zeros((0, ROI_DIM))
    return feats, [1.0] * len(boxes), [str(t) for t in tags]


def write_shard(
    shard: str | os.PathLike, root: str | os.PathLike | None, max_rois: int, bar=None
) -> Path:
    """Write the oracle sidecar of one synthetic shard (reads it twice: keys, then samples)."""
    shard = Path(shard)
    samples = list(iter_samples(shard, ("png", "json")))
    target = sidecar_path(root, shard)
    with SidecarWriter(
        target.parent, shard.name, len(samples), max_rois=max_rois, source="oracle"
    ) as writer:
        for key, members in samples:
            if "png" not in members or "json" not in members:
                raise ValueError(f"shard {shard}, sample {key!r}: no .png or .json member")
            feats, conf, tags = sample_rois(members["png"], json.loads(members["json"]))
            writer.add(key, feats, conf, tags)
            if bar is not None:
                bar.update(1)
        return writer.commit(oracle_seed=ORACLE_SEED)


def write_oracle_rois(
    data: str | os.PathLike,
    *,
    out: str | os.PathLike | None = None,
    splits: Sequence[str] = DEFAULT_SPLITS,
    max_rois: int = DEFAULT_MAX_ROIS,
    progress: bool = True,
) -> dict[str, int]:
    """Write the oracle sidecars of ``splits`` of the embedded dataset in ``data``.

    Sidecars go next to the shards (``out`` None) or into ``out``; finished ones are kept.
    Returns ``{"written": n, "skipped": m}`` (shards).
    """
    from alignclip_plugins.synthetic import load_manifest, split_urls

    manifest = load_manifest(data)
    unknown = [s for s in splits if s not in manifest["splits"]]
    if unknown:
        raise ValueError(f"no split(s) {unknown} in {data}; splits: {list(manifest['splits'])}")
    todo = []
    skipped = 0
    for split in splits:
        for url in split_urls(data, split, manifest):
            target = sidecar_path(out, url)
            if target.parent.is_dir():
                remove_temporaries(target.parent)
            if is_complete(target):
                skipped += 1
            else:
                todo.append((split, url))
    total = sum(
        min(manifest["splits"][s]["num_samples"], _shard_size(manifest, s)) for s, _ in todo
    )
    with tqdm(total=total, unit="img", desc="oracle ROIs", disable=not progress) as bar:
        for _, url in todo:
            write_shard(url, out, max_rois, bar)
    return {"written": len(todo), "skipped": skipped}


def _shard_size(manifest: dict, split: str) -> int:
    info = manifest["splits"][split]
    return -(-info["num_samples"] // info["num_shards"])


def ensure_oracle_rois(data: str | os.PathLike, progress: bool = True) -> dict[str, int]:
    """Write any missing oracle sidecars of the embedded dataset (next to its shards)."""
    return write_oracle_rois(data, progress=progress)


__all__ = [
    "NUM_STATISTICS",
    "ORACLE_SEED",
    "ensure_oracle_rois",
    "projection",
    "roi_vector",
    "sample_rois",
    "statistics",
    "write_oracle_rois",
    "write_shard",
]
