"""Soft-label CLIP losses: pure functions (:mod:`.functional`) and ``nn.Module`` losses.

Names are re-exported lazily so that importing the package stays cheap::

    from alignclip_plugins.losses import softclip_loss, SoftClipLoss
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "label_smoothing_loss": "functional",
    "softclip_loss": "functional",
    "guidance_mix_loss": "functional",
    "object_iou_matrix": "functional",
    "object_iou_loss": "functional",
    "neg_disentangle": "functional",
    "clip_loss": "functional",
    "set_kernel_mode": "functional",
    "gather_features": "distributed",
    "gather_object_ids": "distributed",
    "pad_object_ids": "distributed",
    "SoftLabelLoss": "base",
    "MissingLossInputError": "base",
    "LabelSmoothingLoss": "label_smoothing",
    "SoftClipLoss": "softclip",
    "GuidanceMixLoss": "softclip",
    "ObjectIouLoss": "object_iou",
    "SoftClipAlignClipLoss": "softclip_alignclip",
    "softclip_alignclip_loss": "softclip_alignclip",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
