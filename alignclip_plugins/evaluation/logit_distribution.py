"""The averaged sorted text-to-image probability distribution (SoftCLIP Fig. 6).

For each caption, the softmax of its scaled similarities to all images (the model's own
``logit_scale``), sorted high to low; averaged over captions. A hard-label CLIP puts nearly all
mass on the top 1; a soft-label model spreads some of it over the next ranks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from alignclip_plugins.evaluation.metrics import sorted_softmax
from alignclip_plugins.evaluation.retrieval import Embeddings
from alignclip_plugins.io.atomic import atomic_save_figure


@torch.no_grad()
def profile(emb: Embeddings, logit_scale: float, top: int = 50, chunk: int = 1024) -> list[float]:
    """Mean over captions of the top ``top`` sorted probabilities: ``min(top, N)`` floats."""
    total = None
    for s in range(0, len(emb.texts), chunk):
        probs = sorted_softmax(logit_scale * (emb.texts[s : s + chunk] @ emb.images.T), top)
        part = probs.sum(dim=0)
        total = part if total is None else total + part
    if total is None:
        raise ValueError("no captions")
    return (total / len(emb.texts)).cpu().tolist()


def metrics_of(curve: Sequence[float]) -> dict[str, float]:
    """``prob@r`` for each rank r (1-based) of a profile."""
    return {f"prob@{r + 1}": float(p) for r, p in enumerate(curve)}


def plot(curves: Mapping[str, Sequence[float]], path: str | Path, title: str = "") -> Path:
    """Grouped bars, one colour per model: ranks 1-10 on top, 11-50 below (as Fig. 6)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    longest = max(len(c) for c in curves.values())
    panels = [(0, min(10, longest))] + ([(10, longest)] if longest > 10 else [])
    fig = Figure(figsize=(12, 3.2 * len(panels)))
    FigureCanvasAgg(fig)
    width = 0.8 / max(1, len(curves))
    for row, (lo, hi) in enumerate(panels):
        ax = fig.add_subplot(len(panels), 1, row + 1)
        for i, (label, curve) in enumerate(curves.items()):
            ranks = list(range(lo, min(hi, len(curve))))
            ax.bar(
                [r + 1 + (i - (len(curves) - 1) / 2) * width for r in ranks],
                [curve[r] for r in ranks],
                width=width,
                label=label,
            )
        ax.set_xlim(lo + 0.4, hi + 0.6)
        ax.set_xlabel("rank")
        ax.set_ylabel("mean probability")
        if row == 0:
            ax.legend(fontsize="small")
            if title:
                ax.set_title(title)
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=110)
