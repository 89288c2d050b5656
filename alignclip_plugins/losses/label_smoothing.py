"""PyramidCLIP label smoothing as a loss module (docs/methods.md, "Label smoothing").

``L_LS = ½ (mean H(ỹ_i, P_i(I,T)) + mean H(ỹ_i, P_i(T,I)))`` with
``ỹ_i = (1-α) e_i + α/(N-1) (1-e_i)`` over the global batch (N = all gathered rows).

Accumulation (``--accum-freq > 1``): supported. Upstream's loop re-runs each micro-batch
and concatenates the cached image/text features of the others; the loss of the
concatenated batch is a function of those features only, so the summed micro-batch
gradients equal the gradient of the loss over the accumulated batch (with N the
accumulated global batch size), exactly as for upstream ``ClipLoss``.
"""

from __future__ import annotations

from torch import Tensor

from ._plans import IMAGE, TEXT, label_smoothing_plan
from .base import SoftLabelLoss
from .config import LabelSmoothingConfig

__all__ = ["LabelSmoothingLoss"]


class LabelSmoothingLoss(SoftLabelLoss):
    """Label-smoothed CLIP loss: ``{"label_smoothing_loss"}``; options
    :class:`.config.LabelSmoothingConfig` (``alpha``)."""

    loss_name = "label-smoothing"
    config_class = LabelSmoothingConfig
    supports_accum = True

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        return self.evaluate(
            lambda layout: label_smoothing_plan(layout, self.config),
            logit_scale,
            {IMAGE: image_features, TEXT: text_features},
        )
