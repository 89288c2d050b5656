"""AlignCLIP Object-IoU loss as a module (METHODS.md §4): ``object-iou``.

Inputs beyond upstream's: ``image_objects`` (n, M), the object ids parsed from each
sample's original caption (the set O_i), and ``text_objects`` (n, M'), the ids of the
text actually fed (Q_j); both int64, padded with -1 (any negative id is padding;
duplicates count once). The AlignCLIP data plugin puts them in the model output.
Across ranks they are padded to a common width and all-gathered with the features.

Accumulation (``--accum-freq > 1``): NOT supported (``supports_accum=False``), checked at
start-up by the plugin host. Upstream's loop concatenates every cached model output with
``torch.cat``; the id tensors are padded per batch to that batch's largest set, so
micro-batches generally have different widths M and the concatenation fails. (The loss
itself is exact under accumulation when all micro-batches share one width, like the
features; a data plugin that pads to a fixed width could register it with
``supports_accum=True``.)
"""

from __future__ import annotations

import argparse

from torch import Tensor

from .base import SoftLabelLoss, add_options_once, dist_kwargs, register_loss
from .functional import object_iou_plan

LOSS_NAME = "object-iou"
SUPPORTS_ACCUM = False
PLUGIN = "alignclip"
DEFAULT_BETA = 0.5

__all__ = ["LOSS_NAME", "ObjectIouLoss", "add_arguments", "from_args", "register"]


class ObjectIouLoss(SoftLabelLoss):
    """Object-IoU soft-label CLIP loss. ``output_dict`` → ``{"object_iou_loss"}``."""

    loss_name = LOSS_NAME

    def __init__(self, beta: float = DEFAULT_BETA, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.beta = beta

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **extra,
    ):
        """Features (n, D) per rank; ``image_objects`` / ``text_objects`` (n, M) from ``extra``.

        β = 0 is exactly the CLIP loss and does not read the object ids.
        """
        feats = [image_features, text_features]
        if self.beta == 0:
            ids = []
        else:
            ids = [
                self.require(extra, "image_objects", PLUGIN),
                self.require(extra, "text_objects", PLUGIN),
            ]
        terms = self.evaluate(
            lambda lay: object_iou_plan(lay, beta=self.beta), logit_scale, feats, ids
        )
        return self.finish(terms, output_dict)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, local_loss={self.local_loss}, world_size={self.world_size}"


def _add(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("Object-IoU loss (METHODS §4)")
    g.add_argument(
        "--oiou-beta",
        type=float,
        default=DEFAULT_BETA,
        help=f"β: weight of the object-IoU similarity in the targets; 0 = CLIP (default {DEFAULT_BETA}).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--oiou-beta`` (once)."""
    add_options_once(parser, "--oiou-beta", _add)


def from_args(args: argparse.Namespace, *, provider: str | None = None) -> ObjectIouLoss:
    """Build the loss from ``--oiou-beta`` and upstream's distributed options."""
    return ObjectIouLoss(
        beta=getattr(args, "oiou_beta", DEFAULT_BETA), provider=provider, **dist_kwargs(args)
    )


def register(registry, plugin: str | None = None) -> None:
    """Register ``object-iou`` (one line in a plugin's hook)."""
    register_loss(
        registry,
        LOSS_NAME,
        from_args,
        plugin=plugin,
        add_arguments=add_arguments,
        help="AlignCLIP Object-IoU soft targets from caption object sets (--oiou-beta)",
        supports_accum=SUPPORTS_ACCUM,
    )
