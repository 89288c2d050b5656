"""AlignCLIP's Object-IoU loss as a module (docs/methods.md, "Object-IoU loss").

Inputs beyond upstream's: ``image_objects`` (n, M), the object ids parsed from each
sample's original caption (the set O_i), and ``text_objects`` (n, M'), the ids of the
text actually fed (Q_j); both int64, padded with -1 (any negative id is padding;
duplicates count once). The AlignCLIP data plugin puts them in the model output.
Across ranks they are padded to a common width and all-gathered with the features.

Accumulation (``--accum-freq > 1``): NOT supported. Upstream's loop concatenates every
cached model output with ``torch.cat``; the id tensors are padded per batch to that
batch's largest set, so micro-batches generally have different widths M and the
concatenation fails. (The loss itself is exact under accumulation when all
micro-batches share one width, like the features; a data plugin that pads to a fixed
width could register it as supporting accumulation.)
"""

from __future__ import annotations

from torch import Tensor

from ._plans import IMAGE, IMAGE_OBJECTS, TEXT, TEXT_OBJECTS, object_iou_plan
from .base import SoftLabelLoss
from .config import ObjectIouConfig

__all__ = ["ObjectIouLoss"]


class ObjectIouLoss(SoftLabelLoss):
    """Object-IoU soft-label CLIP loss: ``{"object_iou_loss"}``; options
    :class:`.config.ObjectIouConfig` (``beta``). β = 0 is exactly the CLIP loss and does
    not read the object ids."""

    loss_name = "object-iou"
    config_class = ObjectIouConfig
    providers = {IMAGE_OBJECTS: "alignclip", TEXT_OBJECTS: "alignclip"}
    supports_accum = False

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        inputs = {IMAGE: image_features, TEXT: text_features}
        if self.config.beta != 0:
            inputs[IMAGE_OBJECTS] = self.require(extra, IMAGE_OBJECTS)
            inputs[TEXT_OBJECTS] = self.require(extra, TEXT_OBJECTS)
        return self.evaluate(
            lambda layout: object_iou_plan(layout, self.config), logit_scale, inputs
        )
