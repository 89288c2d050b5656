"""Text-to-image retrieval grids (SoftCLIP Fig. 5a / 7): each query caption's top-k images.

One row per (query, model): the caption and the model's label on the left, then the top
``k`` images from rank 1, each titled with its rank and similarity; an image that is the
query's ground truth (a caption of the dataset queries its own image) has a green frame.
"""

from __future__ import annotations

import io
import random
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from alignclip_plugins.evaluation.retrieval import Embeddings
from alignclip_plugins.io.atomic import atomic_save_figure


@dataclass
class GridRow:
    """One query's ranking by one model."""

    query: str
    label: str
    keys: list[str]  # image keys, best first
    scores: list[float]
    correct: list[bool]  # whether each image is the query's ground truth
    thumbnails: list[bytes]


def pick_queries(emb: Embeddings, count: int, seed: int = 0) -> list[tuple[str, int | None]]:
    """``count`` dataset captions, drawn with ``seed``, as ``(caption, its image index)``."""
    rng = random.Random(seed)
    chosen = sorted(rng.sample(range(len(emb.captions)), min(count, len(emb.captions))))
    return [(emb.captions[i], int(emb.owner[i])) for i in chosen]


@torch.no_grad()
def rank(
    emb: Embeddings,
    queries: Sequence[str],
    query_feats: torch.Tensor,
    targets: Sequence[str | None],
    k: int,
    label: str,
) -> list[GridRow]:
    """The top ``k`` images of each query. ``query_feats`` (Q, D) unit vectors; ``targets``
    the key of each query's ground-truth image, or None. ``emb`` needs thumbnails."""
    if emb.thumbnails is None:
        raise ValueError("retrieval grids need the images' thumbnails")
    scores = query_feats @ emb.images.T
    top = torch.topk(scores, min(k, scores.shape[1]), dim=1)
    rows = []
    for q, (values, indices) in enumerate(zip(top.values.cpu(), top.indices.cpu())):
        idx = indices.tolist()
        keys = [emb.keys[i] for i in idx]
        rows.append(
            GridRow(
                query=queries[q],
                label=label,
                keys=keys,
                scores=values.tolist(),
                correct=[targets[q] is not None and key == targets[q] for key in keys],
                thumbnails=[emb.thumbnails[i] for i in idx],
            )
        )
    return rows


def _thumb(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def render(rows: Sequence[GridRow], path: str | Path) -> Path:
    """Draw ``rows`` into one PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    k = max(len(r.keys) for r in rows)
    cell = 1.3
    fig = Figure(figsize=(cell * (k + 2.5), cell * len(rows) + 0.3))
    FigureCanvasAgg(fig)
    grid = fig.add_gridspec(
        len(rows), k + 1, width_ratios=[2.5] + [1] * k, wspace=0.05, hspace=0.35
    )
    for r, row in enumerate(rows):
        ax = fig.add_subplot(grid[r, 0])
        ax.axis("off")
        text = "\n".join(textwrap.wrap(row.query, 34)[:5])
        ax.text(0, 0.5, f"{row.label}\n{text}", va="center", ha="left", fontsize=7, wrap=True)
        for c, (thumb, score, ok) in enumerate(zip(row.thumbnails, row.scores, row.correct)):
            ax = fig.add_subplot(grid[r, c + 1])
            image = _thumb(thumb)
            ax.imshow(image)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"#{c + 1}  {score:.3f}", fontsize=6, pad=2)
            for spine in ax.spines.values():
                spine.set_visible(False)
            if ok:
                h, w = image.shape[:2]
                ax.add_patch(
                    Rectangle((0, 0), w - 1, h - 1, fill=False, edgecolor="limegreen", linewidth=3)
                )
    return atomic_save_figure(fig, path, dpi=110, bbox_inches="tight")
