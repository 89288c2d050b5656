"""Soft-label contrastive losses as tensor functions, and the one definition of each target.

Every loss takes L2-normalised features ``(N, D)`` and ``logit_scale``, the multiplier
``s = 1/τ`` (already exponentiated, a 0-d tensor), its options as a config
(:mod:`.config`) and/or keywords, and returns float32 (float64 for float64 inputs) values
equal to the formulas of docs/methods.md. The given tensors are the whole batch.

Targets: ``*_targets`` give the explicit ``N x N`` targets of both directions. They are
built on the row functions above them (``*_target_rows``, ``object_iou_from_counts``,
:func:`softclip_target_log_rows`), which are the single definition of each target: the
kernels call them on their row blocks (or, for SoftCLIP's closed form, compute them from
row statistics), and :func:`alignclip_plugins.losses.reference` checks them.

Memory and speed: nothing of size ``N x N`` is kept; each direction is processed in row
blocks with exact hand-derived gradients (see :mod:`._engine`). Element-wise work runs
as eager in-place kernels or, on CUDA with Triton, as ``torch.compile``-fused kernels
(:func:`set_kernel_mode` / ``ALIGNCLIP_LOSS_KERNELS=eager|fused|compile|auto``).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ._engine import Layout, as_scale, check_features, run_plan
from ._modes import KERNEL_MODES, resolve_mode, set_kernel_mode
from ._sets import canonical_sets, intersections
from .config import (
    DIVERGENCES,
    SUPERVISION_FORMS,
    GuidanceMixConfig,
    LabelSmoothingConfig,
    ObjectIouConfig,
    SoftClipConfig,
    SoftTargetConfig,
)

__all__ = [
    "DIVERGENCES",
    "KERNEL_MODES",
    "SUPERVISION_FORMS",
    "active_kernel_mode",
    "clip_loss",
    "guidance_mix_loss",
    "label_smoothing_loss",
    "label_smoothing_targets",
    "label_smoothing_weights",
    "mask_rois",
    "neg_disentangle",
    "neg_disentangle_log",
    "object_iou_from_counts",
    "object_iou_loss",
    "object_iou_matrix",
    "object_iou_similarity",
    "object_iou_target_rows",
    "object_iou_targets",
    "positive_mask",
    "set_kernel_mode",
    "softclip_loss",
    "softclip_target_log_rows",
    "softclip_targets",
]


def active_kernel_mode(device: torch.device | str = "cpu") -> str:
    """The kernel implementation the losses use on ``device`` now (see :func:`set_kernel_mode`)."""
    return resolve_mode(torch.device(device))


# ---------------------------------------------------------------------------------------
# Targets (rows against columns; each row's positive at ``positive_mask``)
# ---------------------------------------------------------------------------------------


def positive_mask(num_cols: int, positives: Tensor) -> Tensor:
    """(C, N) bool, true at column ``positives[i]`` of row i."""
    return torch.arange(num_cols, device=positives.device)[None, :] == positives[:, None]


def label_smoothing_weights(num_cols: int, alpha: float) -> tuple[float, float]:
    """A label-smoothed target row over ``num_cols`` columns: (its positive's entry, each
    negative's), ``(1-α, α/(N-1))``; ``(1, 0)`` for N = 1 (no negatives)."""
    if num_cols > 1:
        return 1.0 - alpha, alpha / (num_cols - 1)
    return 1.0, 0.0


def label_smoothing_targets(
    n: int, alpha: float = LabelSmoothingConfig.alpha, *, dtype=torch.float32
) -> tuple[Tensor, Tensor]:
    """(v2l, l2v) targets of :func:`label_smoothing_loss`, each (N, N) (SoftCLIP eq. 5)."""
    on, off = label_smoothing_weights(n, alpha)
    eye = torch.eye(n, dtype=dtype)
    y = on * eye + off * (1 - eye)
    return y, y.clone()


def softclip_target_log_rows(target_logits: Tensor, positive_mask: Tensor, beta: float) -> Tensor:
    """``log((1-β) e_i + β softmax(y_i))`` (C, N) for target logits ``y = s' X Yᵀ``: SoftCLIP's
    softened target rows (eq. 8-9), computed in log space (no underflow of the softmax)."""
    lq = torch.log_softmax(target_logits, 1)
    if beta == 0:
        return torch.where(positive_mask, 0.0, -math.inf).to(lq.dtype)
    if beta == 1:
        return lq
    log_on = torch.full_like(lq, math.log1p(-beta))
    return torch.where(
        positive_mask, torch.logaddexp(log_on, math.log(beta) + lq), math.log(beta) + lq
    )


def softclip_targets(
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    config: SoftTargetConfig | None = None,
    **options,
) -> tuple[Tensor, Tensor]:
    """SoftCLIP's softened targets of both directions (eq. 8-9), each (N, N):
    ``(1-β) I + β softmax(s' X Yᵀ)`` with X, Y from the supervision forms (Table 9).
    ``config`` / ``options``: ``beta``, ``v2l_target``, ``l2v_target``."""
    cfg = SoftTargetConfig.resolve(config, options)
    feats = {"R": roi_features.detach(), "A": tag_features.detach()}
    s = as_scale(logit_scale, [roi_features]).detach()
    out = []
    for form in (cfg.v2l_target, cfg.l2v_target):
        a, b = feats[form[0]], feats[form[2]]
        mask = torch.eye(a.shape[0], dtype=torch.bool, device=a.device)
        out.append(softclip_target_log_rows(s.to(a.dtype) * a @ b.T, mask, cfg.beta).exp())
    return out[0], out[1]


def _iou(inter: Tensor, a_sizes: Tensor, b_sizes: Tensor, dtype: torch.dtype) -> Tensor:
    union = (a_sizes[:, None] + b_sizes[None, :]).to(dtype) - inter.to(dtype)
    return inter.to(dtype) / union.clamp_min(1)  # 0 when both sets are empty


def object_iou_matrix(image_objects: Tensor, text_objects: Tensor) -> Tensor:
    """IoU of object-id sets: ``(N, M)`` and ``(N', M')`` int ids padded with -1 → (N, N') float.

    Ids are treated as sets (duplicates in a row count once; negative ids are padding);
    the IoU of two empty sets is 0.
    """
    a, sa = canonical_sets(image_objects)
    b, sb = canonical_sets(text_objects.to(a.device))
    return _iou(intersections(a, b), sa, sb, torch.float32)


def object_iou_from_counts(
    intersections: Tensor,
    row_sizes: Tensor,
    col_sizes: Tensor,
    positive_mask: Tensor,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """The normalised Object-IoU ``Ŝ`` (C, N): ``S_ij = |O_i ∩ Q_j| / |O_i ∪ Q_j|`` (0 for two
    empty sets), ``S = 1`` at each row's positive, each row divided by its sum.

    ``intersections`` (C, N) counts, ``row_sizes`` (C,) and ``col_sizes`` (N,) set sizes.
    """
    s = torch.where(positive_mask, 1.0, _iou(intersections, row_sizes, col_sizes, dtype))
    return s / s.sum(1, keepdim=True)


def object_iou_similarity(
    row_objects: Tensor,
    col_objects: Tensor,
    positive_mask: Tensor | None = None,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """:func:`object_iou_from_counts` of two id tensors (C, M) / (N, M') padded with -1;
    positives default to the diagonal."""
    a, sa = canonical_sets(row_objects)
    b, sb = canonical_sets(col_objects.to(a.device))
    if positive_mask is None:
        positive_mask = torch.eye(a.shape[0], b.shape[0], dtype=torch.bool, device=a.device)
    return object_iou_from_counts(intersections(a, b), sa, sb, positive_mask, dtype)


def object_iou_target_rows(similarity: Tensor, positive_mask: Tensor, beta: float) -> Tensor:
    """AlignCLIP's Object-IoU target rows ``(1-β) e_i + β Ŝ_i`` (C, N) from ``Ŝ``."""
    return positive_mask.to(similarity.dtype) * (1.0 - beta) + beta * similarity


def object_iou_targets(
    image_objects: Tensor, text_objects: Tensor, config: ObjectIouConfig | None = None, **options
) -> tuple[Tensor, Tensor]:
    """Object-IoU targets (N, N): image→text rows ``y_i`` and text→image rows ``y'_j``
    (``Ŝ`` of the text sets against the image sets: the column-normalised IoU)."""
    cfg = ObjectIouConfig.resolve(config, options)
    n = image_objects.shape[0]
    mask = torch.eye(n, dtype=torch.bool, device=image_objects.device)
    v2l = object_iou_similarity(image_objects, text_objects, mask)
    l2v = object_iou_similarity(text_objects, image_objects, mask)
    return object_iou_target_rows(v2l, mask, cfg.beta), object_iou_target_rows(l2v, mask, cfg.beta)


def neg_disentangle_log(log_rows: Tensor, positive_mask: Tensor) -> Tensor:
    """SoftCLIP eq. 12 in log space: each row renormalised without its positive (C, N);
    -inf at the positive. ``log_rows`` may be unnormalised (logits)."""
    return torch.log_softmax(log_rows.masked_fill(positive_mask, -math.inf), 1)


def neg_disentangle(p: Tensor) -> Tensor:
    """SoftCLIP eq. 12: (N, N) row distributions → (N, N-1), diagonal dropped, rows renormalised."""
    if p.dim() != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"expected a square (N, N) matrix, got {tuple(p.shape)}")
    n = p.shape[0]
    eye = torch.eye(n, dtype=torch.bool, device=p.device)
    return neg_disentangle_log(p.log(), eye).exp()[~eye].reshape(n, n - 1)


# ---------------------------------------------------------------------------------------
# Losses. The plans are imported at call time: the kernels they use read the targets
# above from this module.
# ---------------------------------------------------------------------------------------


def clip_loss(
    image_features: Tensor, text_features: Tensor, logit_scale: Tensor, *, chunk_rows=None
) -> Tensor:
    """Hard CLIP loss (docs/methods.md, "CLIP"), row-blocked; equals upstream ``ClipLoss``. 0-d."""
    from . import _plans

    check_features(image_features, text_features)
    plan = _plans.clip_plan(Layout.single((_plans.IMAGE, _plans.TEXT))).chunked(chunk_rows)
    return run_plan(plan, logit_scale, [image_features, text_features])["clip"]


def label_smoothing_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor,
    config: LabelSmoothingConfig | None = None,
    *,
    chunk_rows: int | None = None,
    **options,
) -> Tensor:
    """PyramidCLIP label smoothing (docs/methods.md, "Label smoothing"). Features (N, D); 0-d.

    Targets :func:`label_smoothing_targets` in both directions; N = 1 has no negatives and
    gives the plain CLIP loss. ``options``: ``alpha``.
    """
    from . import _plans

    check_features(image_features, text_features)
    cfg = LabelSmoothingConfig.resolve(config, options)
    layout = Layout.single((_plans.IMAGE, _plans.TEXT))
    plan = _plans.label_smoothing_plan(layout, cfg).chunked(chunk_rows)
    return run_plan(plan, logit_scale, [image_features, text_features])["label_smoothing"]


def mask_rois(
    roi_features: Tensor, tag_features: Tensor, roi_valid: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """SoftCLIP inputs for a batch where some samples have no ROIs (``roi_valid`` (N,) False).

    Returns the ROI and tag features with those samples' rows zeroed (as target columns
    they then have logit 0, cosine similarity 0, to every row) and their (N, 1) float
    flags. With the flags, those samples' own rows take the hard label (soft term
    ``-log p_ii``, no relation term) and they leave the ROI-tag term.
    """
    n = roi_features.shape[0]
    if roi_valid.shape != (n,):
        raise ValueError(
            f"roi_valid must be ({n},), one flag per sample, got {tuple(roi_valid.shape)}"
        )
    flags = roi_valid.reshape(n, 1).to(roi_features.dtype)
    return roi_features * flags, tag_features * flags.to(tag_features.dtype), flags


def _soft_loss(plan_fn, config, feats: list[Tensor], logit_scale, roi_valid, chunk_rows):
    """SoftCLIP and its guidance mix: ROI masking, layout and evaluation, shared."""
    from . import _plans

    check_features(*feats)
    names = [_plans.IMAGE, _plans.TEXT, _plans.ROI, _plans.TAG]
    if roi_valid is not None:
        feats[2:] = mask_rois(feats[2], feats[3], roi_valid)
        names.append(_plans.VALID)
    plan = plan_fn(Layout.single(names), config).chunked(chunk_rows)
    return run_plan(plan, logit_scale, feats)


def softclip_loss(
    image_features: Tensor,
    text_features: Tensor,
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    config: SoftClipConfig | None = None,
    *,
    roi_valid: Tensor | None = None,
    chunk_rows: int | None = None,
    **options,
) -> dict[str, Tensor]:
    """SoftCLIP (docs/methods.md, "SoftCLIP"): ``{"soft", "relation", "clip"[, "roi_tag"]}``.

    All features (N, D) (roi/tag: the ROI and tag embeddings r_i, a_i). Returns the
    weighted components whose sum is the loss: ``soft`` = L̃_soft (or L_soft with
    ``symmetric=False``; JS with ``divergence="js"``), ``relation`` = λ L̃_re (absent when
    ``relation_enhanced`` is off or λ = 0), ``clip`` = μ L_CLIP (absent when μ = 0),
    ``roi_tag`` = w_rt · CLIP(r, a) (absent when ``roi_tag_weight`` = 0). ``config`` /
    ``options``: the fields of :class:`.config.SoftClipConfig`. Targets use ``s' =
    logit_scale`` as a constant; they carry gradient only with ``target_grad``. The
    disentangled target does not depend on β (β q_ij / Σ_{k≠i} β q_ik), so at β = 0 the
    relation term is its β → 0 limit. ``roi_valid`` (N,) bool marks the samples that have
    ROIs; the others take hard labels (see :func:`mask_rois`).
    """
    from . import _plans

    cfg = SoftClipConfig.resolve(config, options)
    feats = [image_features, text_features, roi_features, tag_features]
    return _soft_loss(_plans.softclip_plan, cfg, feats, logit_scale, roi_valid, chunk_rows)


def guidance_mix_loss(
    image_features: Tensor,
    text_features: Tensor,
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    config: GuidanceMixConfig | None = None,
    *,
    roi_valid: Tensor | None = None,
    chunk_rows: int | None = None,
    **options,
) -> dict[str, Tensor]:
    """SoftCLIP Fig. 4a (docs/methods.md, "Guidance mix"): ``γ L(R,A) + (1-γ) L(I,T)`` with
    ``L = L̃_soft + λ L̃_re``, no CLIP.

    ``L(I,T)`` takes its v2l target from the image self-similarity ``softmax(s' V Vᵀ)``
    and its l2v target from ``softmax(s' T Tᵀ)``. Returns the weighted components
    ``soft_ra``, ``relation_ra`` (γ-weighted) and ``soft_it``, ``relation_it``
    ((1-γ)-weighted); zero-weight parts are omitted. ``config`` / ``options``: the fields
    of :class:`.config.GuidanceMixConfig`. ``roi_valid``: as in :func:`softclip_loss` (rows
    without ROIs take the hard label in the ROI/tag part).
    """
    from . import _plans

    cfg = GuidanceMixConfig.resolve(config, options)
    feats = [image_features, text_features, roi_features, tag_features]
    return _soft_loss(_plans.guidance_mix_plan, cfg, feats, logit_scale, roi_valid, chunk_rows)


def object_iou_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor,
    image_objects: Tensor,
    text_objects: Tensor,
    config: ObjectIouConfig | None = None,
    *,
    chunk_rows: int | None = None,
    **options,
) -> Tensor:
    """AlignCLIP's Object-IoU loss (docs/methods.md, "Object-IoU loss"); 0-d.

    Features (N, D), object ids (N, M) / (N, M') int, padded with -1. Targets
    :func:`object_iou_targets`; β = 0 is exactly the CLIP loss. ``options``: ``beta``.
    """
    from . import _plans

    check_features(image_features, text_features)
    n = image_features.shape[0]
    if image_objects.shape[0] != n or text_objects.shape[0] != n:
        raise ValueError("image_objects and text_objects need one row per sample")
    cfg = ObjectIouConfig.resolve(config, options)
    names = (_plans.IMAGE, _plans.TEXT, _plans.IMAGE_OBJECTS, _plans.TEXT_OBJECTS)
    plan = _plans.object_iou_plan(Layout.single(names), cfg).chunked(chunk_rows)
    ts = [image_features, text_features, image_objects, text_objects]
    return run_plan(plan, logit_scale, ts)["object_iou"]
