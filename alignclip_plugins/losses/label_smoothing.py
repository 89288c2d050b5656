"""PyramidCLIP label smoothing as a loss module (METHODS.md §2, SoftCLIP eq. 5).

``L_LS = ½ (mean H(ỹ_i, P_i(I,T)) + mean H(ỹ_i, P_i(T,I)))`` with
``ỹ_i = (1-α) e_i + α/(N-1) (1-e_i)`` over the global batch (N = all gathered rows).

Accumulation (``--accum-freq > 1``): supported (``supports_accum=True``). Upstream's
loop re-runs each micro-batch and concatenates the cached image/text features of the
others; the loss of the concatenated batch is a function of those features only, so the
summed micro-batch gradients equal the gradient of the loss over the accumulated batch
(with N the accumulated global batch size), exactly as for upstream ``ClipLoss``.
"""

from __future__ import annotations

import argparse

from torch import Tensor

from .base import SoftLabelLoss, add_options_once, dist_kwargs, register_loss
from .functional import label_smoothing_plan

LOSS_NAME = "label-smoothing"
SUPPORTS_ACCUM = True

__all__ = ["LOSS_NAME", "LabelSmoothingLoss", "add_arguments", "from_args", "register"]


class LabelSmoothingLoss(SoftLabelLoss):
    """Label-smoothed CLIP loss. ``forward(...)`` → 0-d loss or ``{"label_smoothing_loss"}``."""

    loss_name = LOSS_NAME

    def __init__(self, alpha: float = 0.2, **kwargs) -> None:
        super().__init__(**kwargs)
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha}")
        self.alpha = alpha

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **extra,
    ):
        """Features (n, D) per rank, L2-normalised; ``logit_scale`` = exp'ed multiplier.

        ``logit_bias`` (SigLIP) shifts every logit of a row equally and so cannot change a
        softmax loss: it is accepted and ignored, as are other extra model outputs.
        """
        terms = self.evaluate(
            lambda lay: label_smoothing_plan(lay, alpha=self.alpha),
            logit_scale,
            [image_features, text_features],
        )
        return self.finish(terms, output_dict)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, local_loss={self.local_loss}, world_size={self.world_size}"


def _add(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("label-smoothing loss (METHODS §2)")
    group.add_argument(
        "--ls-alpha",
        type=float,
        default=0.2,
        help="Label smoothing α: target (1-α) on the pair, α/(N-1) on each negative (default 0.2).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--ls-alpha`` (once, even if called again)."""
    add_options_once(parser, "--ls-alpha", _add)


def from_args(args: argparse.Namespace, *, provider: str | None = None) -> LabelSmoothingLoss:
    """Build the loss from parsed options (``--ls-alpha`` and upstream's distributed ones)."""
    return LabelSmoothingLoss(
        alpha=getattr(args, "ls_alpha", 0.2), provider=provider, **dist_kwargs(args)
    )


def register(registry, plugin: str | None = None) -> None:
    """Register ``label-smoothing`` in a loss registry (one line in a plugin's hook)."""
    register_loss(
        registry,
        LOSS_NAME,
        from_args,
        plugin=plugin,
        add_arguments=add_arguments,
        help="PyramidCLIP label smoothing of the CLIP targets (--ls-alpha)",
        supports_accum=SUPPORTS_ACCUM,
    )
