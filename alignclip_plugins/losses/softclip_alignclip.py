"""SoftCLIP and AlignCLIP targets combined: ``softclip-alignclip`` (beyond the papers;
docs/methods.md, "SoftCLIP + Object-IoU").

Each row's target is a convex mix of the two methods' target distributions,

    t_i = ω [(1-β) e_i + β softmax(s' R Rᵀ)_i]  +  (1-ω) [(1-β_o) e_i + β_o Ŝ_i]

(SoftCLIP's softened target, eq. 8, with its supervision form; AlignCLIP's Object-IoU
target with β_o; the text→image rows use the l2v form and the text sets against the
image sets). The loss is SoftCLIP's (eq. 16) with ``t`` in place of SoftCLIP's target:
``D(t, P(I,T)) + λ D(t*, P*(I,T)) + μ L_CLIP`` and the same for text→image, where ``D`` is
the KL or, by default, the symmetric KL, and ``*`` the negatives-disentangled rows
(eq. 12; a row whose target has no mass off the diagonal adds no relation term), plus
the ROI-tag CLIP term ``w_rt``. ω = 1 is SoftCLIP exactly; ω = 0 with ``symmetric=False``
and λ = μ = 0 is the Object-IoU loss up to the target's entropy (a constant).

Samples without ROIs (``roi_valid`` False) take SoftCLIP's hard label in place of the
SoftCLIP part of their target: ``t_i = ω e_i + (1-ω) [(1-β_o) e_i + β_o Ŝ_i]``; their
ROI / tag vectors are zero as target columns of the other rows, and they leave the
ROI-tag term. Such a target has zero entries wherever Ŝ_i does, so those rows take the
KL alone (the reverse KL would be infinite); at ω = 1 this is SoftCLIP's ``-log p_ii``.

Built on the public target API (:mod:`.targets`): a :class:`MixedTarget` per
direction, SoftCLIP's terms (:class:`.config.SoftTerms`) and a :class:`.targets.ClipTerm`.
Targets carry no gradient. The row blocks use local autograd (like SoftCLIP's JS ablation),
so time and memory per block are a few times SoftCLIP's closed-form kernel; nothing
N x N is kept.
"""

from __future__ import annotations

import math
from dataclasses import fields

import torch
from torch import Tensor

from .config import SoftClipAlignClipConfig, SoftTerms
from .functional import (
    mask_rois,
    object_iou_similarity,
    object_iou_target_rows,
    softclip_target_log_rows,
)
from .targets import ClipTerm, RowBlock, Target, TargetLoss, target_loss

__all__ = ["MixedTarget", "SoftClipAlignClipLoss", "softclip_alignclip_loss"]

ROI, TAG, ROI_VALID = "roi_features", "tag_features", "roi_valid"
IMAGE_OBJECTS, TEXT_OBJECTS = "image_objects", "text_objects"
_FIELDS = frozenset(f.name for f in fields(SoftClipAlignClipConfig))


class MixedTarget(Target):
    """The mixed target rows of one direction (``"v2l"`` or ``"l2v"``), in log space."""

    optional_inputs = (ROI_VALID,)

    def __init__(self, config: SoftClipAlignClipConfig, direction: str) -> None:
        self.config = config
        form = config.v2l_target if direction == "v2l" else config.l2v_target
        src = {"R": ROI, "A": TAG}
        self.features = (src[form[0]], src[form[2]])
        self.objects = (IMAGE_OBJECTS, TEXT_OBJECTS)
        if direction == "l2v":
            self.objects = self.objects[::-1]
        self.inputs = (*dict.fromkeys(self.features), *self.objects)

    def log_rows(self, block: RowBlock) -> Tensor:
        cfg, mask = self.config, block.positive_mask
        parts = []
        if cfg.weight > 0:
            soft = softclip_target_log_rows(block.logits(*self.features), mask, cfg.beta)
            if block.has(ROI_VALID):  # samples without ROIs: SoftCLIP's hard label
                hard = ~block.rows(ROI_VALID).bool()
                one_hot = torch.where(mask, 0.0, -math.inf).to(soft.dtype)
                soft = torch.where(hard[:, None], one_hot, soft)
            parts.append(math.log(cfg.weight) + soft)
        if cfg.weight < 1:
            rows, cols = block.rows(self.objects[0]), block.cols(self.objects[1])
            similarity = object_iou_similarity(rows, cols, mask, block.dtype)
            iou = object_iou_target_rows(similarity, mask, cfg.iou_beta)
            parts.append(math.log1p(-cfg.weight) + iou.log())
        return parts[0] if len(parts) == 1 else torch.logaddexp(parts[0], parts[1])


def _parts(cfg: SoftClipAlignClipConfig) -> dict:
    """The targets and terms of the loss, for :func:`target_loss` / :class:`TargetLoss`."""
    soft = SoftTerms(
        lam=cfg.lam, mu=cfg.mu, relation_enhanced=cfg.relation_enhanced, symmetric=cfg.symmetric
    )
    clip_terms = ()
    if cfg.roi_tag_weight:
        clip_terms = (ClipTerm("roi_tag", ROI, TAG, cfg.roi_tag_weight, valid=ROI_VALID),)
    return dict(
        v2l=MixedTarget(cfg, "v2l"), l2v=MixedTarget(cfg, "l2v"), soft=soft,
        clip_terms=clip_terms, name="soft",
    )  # fmt: skip


def softclip_alignclip_loss(
    image_features: Tensor,
    text_features: Tensor,
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    image_objects: Tensor,
    text_objects: Tensor,
    config: SoftClipAlignClipConfig | None = None,
    *,
    roi_valid: Tensor | None = None,
    chunk_rows: int | None = None,
    **options,
) -> dict[str, Tensor]:
    """The mixed-target loss (module doc): ``{"soft", "relation", "clip"[, "roi_tag"]}``.

    Features (N, D), L2-normalised; object ids (N, M) / (N, M') int64 padded with -1;
    ``roi_valid`` (N,) bool, False for samples without ROIs. ``config`` / ``options``: the
    fields of :class:`.config.SoftClipAlignClipConfig`. Returns the weighted components
    whose sum is the loss (absent ones omitted).
    """
    cfg = SoftClipAlignClipConfig.resolve(config, options)
    inputs = {ROI: roi_features, TAG: tag_features}
    inputs.update({IMAGE_OBJECTS: image_objects, TEXT_OBJECTS: text_objects})
    if roi_valid is not None:
        inputs[ROI], inputs[TAG], _ = mask_rois(roi_features, tag_features, roi_valid)
        inputs[ROI_VALID] = roi_valid
    return target_loss(
        image_features, text_features, logit_scale, inputs=inputs, chunk_rows=chunk_rows,
        **_parts(cfg),
    )  # fmt: skip


class SoftClipAlignClipLoss(TargetLoss):
    """The mixed-target loss as a module; ``output_dict`` terms as :class:`.softclip.SoftClipLoss`.

    Options :class:`.config.SoftClipAlignClipConfig`; inputs from the ``softclip`` plugin
    (``roi_features``, ``tag_features``, ``roi_valid``) and the ``alignclip`` plugin
    (``image_objects``, ``text_objects``).
    """

    loss_name = "softclip-alignclip"
    config_class = SoftClipAlignClipConfig
    providers = {
        ROI: "softclip", TAG: "softclip", IMAGE_OBJECTS: "alignclip", TEXT_OBJECTS: "alignclip"
    }  # fmt: skip
    supports_accum = False  # object-id widths differ between micro-batches (see object_iou.py)

    def __init__(self, config: SoftClipAlignClipConfig | None = None, **kwargs) -> None:
        options = {k: kwargs.pop(k) for k in list(kwargs) if k in _FIELDS}
        cfg = SoftClipAlignClipConfig.resolve(config, options)
        super().__init__(config=cfg, **_parts(cfg), **kwargs)

    def prepare(self, extra: dict) -> dict[str, Tensor]:
        named = super().prepare(extra)
        if not self.config.roi_tag_weight:  # no term differentiates them: gather without autograd
            named[ROI], named[TAG] = named[ROI].detach(), named[TAG].detach()
        if ROI_VALID in named:
            named[ROI], named[TAG], _ = mask_rois(named[ROI], named[TAG], named[ROI_VALID])
        return named

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        terms = super().terms(image_features, text_features, logit_scale, extra)
        return {("contrastive" if k == "clip" else k): v for k, v in terms.items()}
