"""Grad-CAM word-level localisation (SoftCLIP Fig. 5b): where in the image a caption word is.

The score whose gradient drives the map is an image-text cosine similarity:

* ``word`` (default): similarity of the image to the word alone (``--word-template``, ``{}``
  by default, e.g. ``"a photo of {}."``);
* ``context``: similarity to the caption minus similarity to the caption with the word
  removed, i.e. what the word adds in its caption.

The text side is fixed; gradients flow into the image tower only. Grad-CAM (Selvaraju et al.
2017) weights each channel of a layer's activations by its mean gradient, sums over channels,
keeps the positive part and scales the map to [0, 1]. Layers:

* ViT towers (open_clip ``VisionTransformer``): the patch tokens at the input of the last
  residual block's attention, i.e. the output of ``visual.transformer.resblocks[-1].ln_1``
  (the last block's output patch tokens do not reach the pooled CLS token, so their
  gradient is zero), reshaped to the patch grid;
* ResNet towers (open_clip ``ModifiedResNet``): the output of ``visual.layer4``, before the
  attention pooling.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from alignclip_plugins.io.atomic import atomic_save_figure

TARGETS = ("word", "context")

#: Words that are never a caption's default Grad-CAM words.
STOP_WORDS = frozenset(
    "a an the and or of in on at to with by for from is are was were be been it its this that "
    "these those there their his her some two three one while near next into onto over under "
    "up down out as very".split()
)


@dataclass
class Layer:
    """The layer Grad-CAM reads and how to turn its output into a (C, H, W) map."""

    module: torch.nn.Module
    to_map: Callable[[torch.Tensor], torch.Tensor]
    description: str


def target_layer(model: torch.nn.Module) -> Layer:
    """The Grad-CAM layer of ``model``'s image tower (see the module docstring)."""
    from open_clip.modified_resnet import ModifiedResNet
    from open_clip.transformer import VisionTransformer

    visual = getattr(model, "visual", None)
    if isinstance(visual, VisionTransformer):
        gh, gw = visual.grid_size
        batch_first = getattr(visual.transformer, "batch_first", True)

        def tokens_to_map(x: torch.Tensor) -> torch.Tensor:
            x = x[0] if batch_first else x[:, 0]  # (L, D) of the single image
            patches = x[x.shape[0] - gh * gw :]  # drop the class (and any register) tokens
            return patches.reshape(gh, gw, -1).permute(2, 0, 1)

        return Layer(
            visual.transformer.resblocks[-1].ln_1,
            tokens_to_map,
            f"visual.transformer.resblocks[{len(visual.transformer.resblocks) - 1}].ln_1 "
            f"(patch tokens, {gh}x{gw} grid)",
        )
    if isinstance(visual, ModifiedResNet):
        return Layer(visual.layer4, lambda x: x[0], "visual.layer4 (before attention pooling)")
    raise ValueError(
        f"Grad-CAM supports open_clip ViT and ModifiedResNet image towers, not "
        f"{type(visual).__name__}"
    )


def grad_cam(score_fn: Callable[[], torch.Tensor], layer: Layer) -> tuple[np.ndarray, float]:
    """``(map (H, W) in [0, 1], score)``: Grad-CAM of the scalar ``score_fn()`` at ``layer``.

    ``score_fn`` runs the forward pass; the layer's output is captured by a hook.
    """
    captured: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        captured.append(output)

    handle = layer.module.register_forward_hook(hook)
    try:
        with torch.enable_grad():
            score = score_fn()
            if not captured:
                raise RuntimeError(f"the forward pass did not run {layer.description}")
            activation = captured[-1]
            (grad,) = torch.autograd.grad(score, activation)
    finally:
        handle.remove()
    a = layer.to_map(activation.detach()).float()
    g = layer.to_map(grad).float()
    weights = g.mean(dim=(1, 2))
    cam = torch.relu((weights[:, None, None] * a).sum(dim=0))
    peak = cam.max()
    cam = cam / peak if peak > 0 else cam
    return cam.cpu().numpy(), float(score.detach())


def content_words(caption: str) -> list[str]:
    """The words of ``caption`` a heatmap is drawn for by default: each distinct word of three
    letters or more that is not a stop word, in caption order."""
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", caption)
    return list(dict.fromkeys(w for w in words if w.lower() not in STOP_WORDS and len(w) > 2))


def remove_word(caption: str, word: str) -> str:
    """``caption`` without whole-word occurrences of ``word`` (case-insensitive)."""
    out = re.sub(rf"\b{re.escape(word)}\b", " ", caption, flags=re.IGNORECASE)
    return " ".join(out.split())


def word_heatmap(
    model: torch.nn.Module,
    tokenizer,
    image: torch.Tensor,
    caption: str,
    word: str,
    target: str = "word",
    word_template: str = "{}",
    layer: Layer | None = None,
) -> tuple[np.ndarray, float]:
    """``(heatmap (h, w) in [0, 1], score)`` of ``word`` for ``image`` (1, 3, H, W)."""
    if target not in TARGETS:
        raise ValueError(f"Grad-CAM target must be one of {', '.join(TARGETS)}, got {target!r}")
    layer = layer or target_layer(model)
    device = next(model.parameters()).device

    def encode_texts(texts: Sequence[str]) -> torch.Tensor:
        with torch.no_grad():
            feats = model.encode_text(tokenizer(list(texts)).to(device))
        return torch.nn.functional.normalize(feats.float(), dim=-1)

    if target == "word":
        texts = encode_texts([word_template.format(word)])
    else:
        without = remove_word(caption, word)
        if without == " ".join(caption.split()):
            raise ValueError(f"the word {word!r} does not occur in the caption {caption!r}")
        texts = encode_texts([caption, without])
    image = image.to(device).requires_grad_(True)

    def score() -> torch.Tensor:
        feats = torch.nn.functional.normalize(model.encode_image(image).float(), dim=-1)
        sims = feats[0] @ texts.T
        return sims[0] if target == "word" else sims[0] - sims[1]

    return grad_cam(score, layer)


def display_image(preprocess, tensor: torch.Tensor) -> np.ndarray:
    """The model's view of an image, (H, W, 3) in [0, 1]: ``tensor`` (3, H, W) with the
    preprocessing's normalisation undone."""
    from torchvision.transforms import Normalize

    x = tensor.detach().float().cpu()
    for t in getattr(preprocess, "transforms", []):
        if isinstance(t, Normalize):
            mean = torch.tensor(t.mean).view(-1, 1, 1)
            std = torch.tensor(t.std).view(-1, 1, 1)
            x = x * std + mean
            break
    else:
        x = (x - x.min()) / (x.max() - x.min() + 1e-8)
    return x.clamp(0, 1).permute(1, 2, 0).numpy()


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """A (h, w) map bilinearly resized to ``size`` (H, W)."""
    t = torch.from_numpy(cam)[None, None].float()
    return torch.nn.functional.interpolate(t, size=size, mode="bilinear", align_corners=False)[
        0, 0
    ].numpy()


@dataclass
class HeatmapRow:
    """One image under one model: its view and one heatmap per word."""

    label: str
    caption: str
    image: np.ndarray  # (H, W, 3) in [0, 1]
    words: list[str]
    maps: list[np.ndarray]  # (H, W) in [0, 1], upsampled
    scores: list[float]


def render(rows: Sequence[HeatmapRow], path: str | Path) -> Path:
    """One PNG: per row the image, then each word's heatmap over it (jet, alpha 0.5)."""
    import textwrap

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    cols = 1 + max(len(r.words) for r in rows)
    fig = Figure(figsize=(2.2 * cols, 2.5 * len(rows)))
    FigureCanvasAgg(fig)
    for r, row in enumerate(rows):
        ax = fig.add_subplot(len(rows), cols, r * cols + 1)
        ax.imshow(row.image)
        ax.set_title("\n".join(textwrap.wrap(f"{row.label}: {row.caption}", 30)[:4]), fontsize=6)
        ax.axis("off")
        for c, (word, cam, score) in enumerate(zip(row.words, row.maps, row.scores)):
            ax = fig.add_subplot(len(rows), cols, r * cols + c + 2)
            ax.imshow(row.image)
            ax.imshow(cam, cmap="jet", alpha=0.5, vmin=0, vmax=1)
            ax.set_title(f"{word} ({score:+.3f})", fontsize=7)
            ax.axis("off")
    fig.tight_layout()
    return atomic_save_figure(fig, path, dpi=110)
