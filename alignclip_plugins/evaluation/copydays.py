"""Copy detection on INRIA Copydays, "strong" subset (DINO's protocol).

Layout (the extracted ``copydays_original`` and ``copydays_strong`` archives)::

    DIR/original/*.jpg     the 157 originals        (or DIR/copydays_original/)
    DIR/strong/*.jpg       the 229 strong attacks   (or DIR/copydays_strong/)
    DISTRACTORS/*.jpg      optional distractor images (DINO adds 10k YFCC100M images)

A strong image's positives are the originals whose file name has the same first four
characters (the Copydays image group, e.g. ``2000``); every other original and every
distractor is a negative. Queries rank originals + distractors by cosine similarity; the
score is the mean trapezoidal AP (:func:`alignclip_plugins.evaluation.metrics.retrieval_map`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from alignclip_plugins.evaluation.encoder import Encoder
from alignclip_plugins.evaluation.metrics import retrieval_map
from alignclip_plugins.evaluation.sources import files_source, image_files, unpack

ORIGINAL_DIRS = ("original", "copydays_original")
STRONG_DIRS = ("strong", "copydays_strong")
LAYOUT = (
    "DIR/original/*.jpg (the originals; or DIR/copydays_original/) and DIR/strong/*.jpg (the "
    "strong attacks; or DIR/copydays_strong/), a strong image matching the originals that "
    "share the first 4 characters of its file name"
)
PREFIX = 4  # characters of a file name that name its Copydays image group
EXPECTED = {"original": 157, "strong": 229}


def _find_dir(data: Path, names: tuple[str, ...]) -> Path:
    for name in names:
        if (data / name).is_dir():
            return data / name
    raise FileNotFoundError(
        f"Copydays: none of {', '.join(str(data / n) for n in names)} exists; expected {LAYOUT}"
    )


def find_images(data: str | Path) -> tuple[list[Path], list[Path]]:
    """``(originals, strong queries)`` under ``data``, each sorted by file name."""
    data = Path(data)
    if not data.is_dir():
        raise FileNotFoundError(f"Copydays directory {data} does not exist; expected {LAYOUT}")
    originals = image_files(_find_dir(data, ORIGINAL_DIRS))
    strong = image_files(_find_dir(data, STRONG_DIRS))
    for what, files in (("original", originals), ("strong", strong)):
        if not files:
            raise ValueError(
                f"Copydays: no images in the {what} folder under {data}; expected {LAYOUT}"
            )
    return originals, strong


def positives(originals: list[Path], queries: list[Path]) -> torch.Tensor:
    """(Q, N_originals) bool: originals in each query's image group (same 4-char prefix)."""
    groups = [p.name[:PREFIX] for p in originals]
    out = torch.tensor([[g == q.name[:PREFIX] for g in groups] for q in queries], dtype=torch.bool)
    orphans = [q.name for q, row in zip(queries, out) if not bool(row.any())]
    if orphans:
        raise ValueError(
            f"Copydays: {len(orphans)} strong image(s) match no original by their first {PREFIX} "
            f"characters, e.g. {orphans[0]}"
        )
    return out


@torch.no_grad()
def _embed(encoder: Encoder, source, preprocess, batch_size: int, workers: int) -> torch.Tensor:
    return torch.cat(
        [
            encoder.images(unpack(b)[0])
            for b in source.batches(preprocess, batch_size, workers, desc=source.slug)
        ]
    )


@torch.no_grad()
def evaluate(
    encoder: Encoder,
    preprocess,
    data: str | Path,
    distractors: str | Path | None = None,
    max_rank: int | None = None,
    batch_size: int = 64,
    workers: int = 4,
) -> tuple[dict[str, float], dict]:
    """``({"mAP": ...}, details)`` of matching each strong image to its original(s)."""
    originals, strong = find_images(data)
    pos = positives(originals, strong)
    extra: list[Path] = []
    if distractors is not None:
        if not Path(distractors).is_dir():
            raise FileNotFoundError(f"distractor folder {distractors} does not exist")
        extra = image_files(distractors)
        if not extra:
            raise ValueError(f"no images in the distractor folder {distractors}")
    gallery = files_source(originals + extra, "copydays-gallery", where=str(data))
    queries = files_source(strong, "copydays-strong", where=str(data))
    g = _embed(encoder, gallery, preprocess, batch_size, workers)
    q = _embed(encoder, queries, preprocess, batch_size, workers)
    pos = torch.cat([pos, torch.zeros(len(strong), len(extra), dtype=torch.bool)], dim=1)
    m, aps = retrieval_map((q @ g.T).cpu(), pos, max_rank)
    details = {
        "originals": len(originals),
        "queries": len(strong),
        "distractors": len(extra),
        "expected_counts": EXPECTED,
    }
    return {"mAP": m}, details
