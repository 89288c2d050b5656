"""Soft-label CLIP losses: tensor functions (:mod:`.functional`), ``nn.Module`` losses, their
options (:mod:`.config`), a way to put your own target on the engine (:mod:`.targets`)
and direct ``N x N`` reference implementations (:mod:`.reference`).

Names are re-exported lazily so that importing the package stays cheap::

    from alignclip_plugins.losses import softclip_loss, SoftClipLoss, SoftClipConfig
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
    "label_smoothing_targets": "functional",
    "softclip_targets": "functional",
    "object_iou_targets": "functional",
    "mask_rois": "functional",
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
    "ConfigError": "config",
    "LabelSmoothingConfig": "config",
    "ObjectIouConfig": "config",
    "SoftClipConfig": "config",
    "GuidanceMixConfig": "config",
    "SoftClipAlignClipConfig": "config",
    "SoftTerms": "config",
    "Target": "targets",
    "TargetLoss": "targets",
    "ClipTerm": "targets",
    "RowBlock": "targets",
    "target_loss": "targets",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
