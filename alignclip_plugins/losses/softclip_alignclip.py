"""SoftCLIP and AlignCLIP targets combined: ``softclip-alignclip`` (beyond the papers).

Each row's target is a convex mix of the two methods' target distributions,

    t_i = ω [(1-β) e_i + β softmax(s' R Rᵀ)_i]  +  (1-ω) [(1-β_o) e_i + β_o S_i / Σ_j S_ij]

(SoftCLIP eq. 8 with its supervision form, weight ω = ``--softclip-alignclip-weight``;
AlignCLIP's Object-IoU target, METHODS §4, with β_o = ``--oiou-beta``; the text→image
rows use the form of ``--softclip-l2v-target`` and the column-normalised IoU). The loss
is SoftCLIP's (eq. 16) with ``t`` in place of SoftCLIP's target:
``D(t, P(I,T)) + λ D(t*, P*(I,T)) + μ L_CLIP`` and the same for text→image, where ``D`` is
the KL or, by default, the symmetric KL, and ``*`` the negatives-disentangled rows
(eq. 12; a row whose target has no mass off the diagonal adds no relation term), plus
the ROI-tag CLIP term ``w_rt`` that trains the ROI branch. ω = 1 is SoftCLIP exactly;
ω = 0 with ``--no-softclip-symmetric`` and λ = μ = 0 is the Object-IoU loss up to the
target's entropy (a constant).

The symmetric KL needs every target entry to be positive: it requires ω > 0 and β > 0
(the softmax term then covers every column). Targets carry no gradient. Inputs: what the
``softclip`` plugin (``roi_features``, ``tag_features``) and the ``alignclip`` plugin
(``image_objects``, ``text_objects``) put in the model output.

The row blocks use local autograd (like SoftCLIP's JS ablation), so time and memory per
block are a few times SoftCLIP's closed-form kernel; nothing N x N is kept.
"""

from __future__ import annotations

import argparse
import math

import torch
from torch import Tensor

from . import object_iou, softclip
from .base import SoftLabelLoss, add_options_once, dist_kwargs, register_loss
from .functional import (
    SUPERVISION_FORMS,
    HardKernel,
    Layout,
    SoftConfig,
    _check_features,
    _chunk_kw,
    _diag_mask,
    _Direction,
    _intersections,
    _iou,
    _Kernel,
    _kernel,
    _Plan,
    _Term,
    run_plan,
    soft_terms_from_log_targets,
)

LOSS_NAME = "softclip-alignclip"
PLUGIN = "softclip_alignclip"
DEFAULT_WEIGHT = 0.5
SUPPORTS_ACCUM = False  # object-id widths differ between micro-batches (see object_iou.py)

__all__ = [
    "LOSS_NAME",
    "SoftClipAlignClipLoss",
    "add_arguments",
    "check_args",
    "from_args",
    "mixed_log_targets",
    "register",
    "softclip_alignclip_loss",
]


def mixed_log_targets(
    y: Tensor, sets: tuple, diag: Tensor, *, weight: float, beta: float, iou_beta: float
) -> Tensor:
    """log t (C, N) of the mixed target rows, in log space (no underflow of the softmax).

    ``y`` (C, N) target logits ``s' X Yᵀ`` of the SoftCLIP form; ``sets`` the canonical
    object-id sets ``(row sets (C, M), sizes (C,), column sets (N, M'), sizes (N,))``;
    ``diag`` (C,) column of each row's positive.
    """
    a, sa, b, sb = sets
    mask = _diag_mask(y, diag)
    s = _iou(_intersections(a, b), sa, sb, y.dtype)
    s = torch.where(mask, 1.0, s)
    s_hat = s / s.sum(1, keepdim=True)
    parts = []
    if weight > 0 and beta > 0:
        parts.append(math.log(weight * beta) + torch.log_softmax(y, 1))
    if weight < 1 and iou_beta > 0:
        parts.append(math.log((1 - weight) * iou_beta) + torch.log(s_hat))
    on = weight * (1 - beta) + (1 - weight) * (1 - iou_beta)  # one-hot mass on the positive
    if on > 0:
        log_on = torch.full_like(y, math.log(on))
        parts.append(log_on.masked_fill_(~mask, -math.inf))
    out = parts[0]
    for p in parts[1:]:
        out = torch.logaddexp(out, p)
    return out


class MixedSoftKernel(_Kernel):
    """SoftCLIP terms against the mixed target; gradient by local autograd on the block."""

    def __init__(self, cfg: SoftConfig, weight: float, iou_beta: float) -> None:
        self.cfg, self.weight, self.iou_beta = cfg, weight, iou_beta

    def eager(self, x, y, diag, w, need_grad):
        feat, sets = y
        lt = mixed_log_targets(
            feat, sets, diag, weight=self.weight, beta=self.cfg.beta, iou_beta=self.iou_beta
        )
        mask = _diag_mask(x, diag)
        lqs = torch.log_softmax(lt.masked_fill(mask, -math.inf), 1) if x.shape[1] > 1 else None
        with torch.enable_grad():
            xg = x.detach().requires_grad_(need_grad)
            vals = soft_terms_from_log_targets(xg, lt, lqs, mask, self.cfg)
            if not need_grad:
                return vals.detach(), None, None
            (dx,) = torch.autograd.grad((vals * w).sum(), [xg])
        return vals.detach(), dx, None


def _validate(weight: float, beta: float, iou_beta: float, symmetric: bool) -> None:
    for name, value in (("weight", weight), ("beta", beta), ("iou_beta", iou_beta)):
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{name} must be in [0, 1], got {value}")
    if symmetric and (weight == 0 or beta == 0):
        raise ValueError(
            "the symmetric KL needs a target with no zero entry: use weight > 0 and beta > 0 "
            "(--softclip-alignclip-weight, --softclip-beta), or --no-softclip-symmetric"
        )


def softclip_alignclip_plan(
    layout: Layout,
    *,
    weight: float = DEFAULT_WEIGHT,
    beta: float = 0.3,
    iou_beta: float = object_iou.DEFAULT_BETA,
    lam: float = 1.0,
    mu: float = 1.0,
    relation_enhanced: bool = True,
    symmetric: bool = True,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
    roi_tag_weight: float = 0.0,
    **chunk,
) -> _Plan:
    """The mixed-target loss on ``layout``'s features and object-id sets."""
    _validate(weight, beta, iou_beta, symmetric)
    cfg = SoftConfig(beta, lam, mu, relation_enhanced, symmetric, "kl", False)
    kern = _kernel(MixedSoftKernel, cfg, float(weight), float(iou_beta))
    comps = cfg.components()
    idx = tuple(range(len(comps)))
    src = {"R": (layout.roi_rows, layout.roi_cols), "A": (layout.tag_rows, layout.tag_cols)}
    targets = []
    for form in (v2l_target, l2v_target):
        if form not in SUPERVISION_FORMS:
            raise ValueError(f"supervision form must be one of {SUPERVISION_FORMS}, got {form!r}")
        targets.append((src[form[0]][0], src[form[2]][1]))
    dirs = [
        _Direction(
            layout.img_rows,
            layout.txt_cols,
            layout.offset,
            (_Term(kern, idx, ("mix", *targets[0], layout.iobj_rows, layout.tobj_cols)),),
        ),
        _Direction(
            layout.txt_rows,
            layout.img_cols,
            layout.offset,
            (_Term(kern, idx, ("mix", *targets[1], layout.tobj_rows, layout.iobj_cols)),),
        ),
    ]
    if roi_tag_weight:
        rt = _kernel(HardKernel, float(roi_tag_weight))
        k = len(comps)
        comps = comps + ("roi_tag",)
        dirs.append(_Direction(layout.roi_rows, layout.tag_cols, layout.offset, (_Term(rt, (k,)),)))
        dirs.append(_Direction(layout.tag_rows, layout.roi_cols, layout.offset, (_Term(rt, (k,)),)))
    return _Plan(comps, tuple(dirs), **chunk)


_SINGLE = Layout(
    roi_rows=2,
    tag_rows=3,
    roi_cols=2,
    tag_cols=3,
    iobj_rows=4,
    tobj_rows=5,
    iobj_cols=4,
    tobj_cols=5,
)


def softclip_alignclip_loss(
    image_features: Tensor,
    text_features: Tensor,
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    image_objects: Tensor,
    text_objects: Tensor,
    *,
    weight: float = DEFAULT_WEIGHT,
    beta: float = 0.3,
    iou_beta: float = object_iou.DEFAULT_BETA,
    lam: float = 1.0,
    mu: float = 1.0,
    relation_enhanced: bool = True,
    symmetric: bool = True,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
    roi_tag_weight: float = 0.0,
    chunk_rows: int | None = None,
) -> dict[str, Tensor]:
    """The mixed-target loss (module doc): ``{"soft", "relation", "clip"[, "roi_tag"]}``.

    Features (N, D), L2-normalised; object ids (N, M) / (N, M') int64 padded with -1.
    Returns the weighted components whose sum is the loss (absent ones omitted).
    """
    _check_features(image_features, text_features, roi_features, tag_features)
    if image_objects.shape[0] != image_features.shape[0] or (
        text_objects.shape[0] != image_features.shape[0]
    ):
        raise ValueError("image_objects and text_objects need one row per sample")
    plan = softclip_alignclip_plan(
        _SINGLE,
        weight=weight,
        beta=beta,
        iou_beta=iou_beta,
        lam=lam,
        mu=mu,
        relation_enhanced=relation_enhanced,
        symmetric=symmetric,
        v2l_target=v2l_target,
        l2v_target=l2v_target,
        roi_tag_weight=roi_tag_weight,
        **_chunk_kw(chunk_rows),
    )
    ts = [image_features, text_features, roi_features, tag_features, image_objects, text_objects]
    return run_plan(plan, logit_scale, ts)


class SoftClipAlignClipLoss(SoftLabelLoss):
    """The mixed-target loss as a module; ``output_dict`` terms as :class:`SoftClipLoss`."""

    loss_name = LOSS_NAME

    def __init__(
        self,
        weight: float = DEFAULT_WEIGHT,
        beta: float = 0.3,
        iou_beta: float = object_iou.DEFAULT_BETA,
        lam: float = 1.0,
        mu: float = 1.0,
        relation_enhanced: bool = True,
        symmetric: bool = True,
        v2l_target: str = "R2R",
        l2v_target: str = "A2A",
        roi_tag_weight: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        _validate(weight, beta, iou_beta, symmetric)
        if roi_tag_weight < 0:
            raise ValueError(f"roi_tag_weight must be >= 0, got {roi_tag_weight}")
        self.options = dict(
            weight=weight,
            beta=beta,
            iou_beta=iou_beta,
            lam=lam,
            mu=mu,
            relation_enhanced=relation_enhanced,
            symmetric=symmetric,
            v2l_target=v2l_target,
            l2v_target=l2v_target,
            roi_tag_weight=roi_tag_weight,
        )

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **extra,
    ):
        roi = self.require(extra, "roi_features", softclip.PLUGIN)
        tag = self.require(extra, "tag_features", softclip.PLUGIN)
        if not self.options["roi_tag_weight"]:
            roi, tag = roi.detach(), tag.detach()
        ids = [
            self.require(extra, "image_objects", object_iou.PLUGIN),
            self.require(extra, "text_objects", object_iou.PLUGIN),
        ]
        terms = self.evaluate(
            lambda lay: softclip_alignclip_plan(lay, **self.options),
            logit_scale,
            [image_features, text_features, roi, tag],
            ids,
        )
        terms = {("contrastive" if k == "clip" else k): v for k, v in terms.items()}
        return self.finish(terms, output_dict)

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{opts}, local_loss={self.local_loss}, world_size={self.world_size}"


def _add(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("softclip-alignclip loss (SoftCLIP + Object-IoU targets)")
    g.add_argument(
        "--softclip-alignclip-weight",
        type=float,
        default=DEFAULT_WEIGHT,
        help="ω: weight of the SoftCLIP ROI/tag target in the convex mix with the Object-IoU "
        f"target (1 = SoftCLIP; default {DEFAULT_WEIGHT}).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """``--softclip-alignclip-weight`` plus the ``--softclip-*`` and ``--oiou-beta`` options."""
    add_options_once(parser, "--softclip-alignclip-weight", _add)
    softclip.add_arguments(parser)
    object_iou.add_arguments(parser)


def _options(args: argparse.Namespace) -> dict:
    return dict(
        weight=getattr(args, "softclip_alignclip_weight", DEFAULT_WEIGHT),
        beta=getattr(args, "softclip_beta", 0.3),
        iou_beta=getattr(args, "oiou_beta", object_iou.DEFAULT_BETA),
        lam=getattr(args, "softclip_lambda", 1.0),
        mu=getattr(args, "softclip_mu", 1.0),
        relation_enhanced=getattr(args, "softclip_relation_enhanced", True),
        symmetric=getattr(args, "softclip_symmetric", True),
        v2l_target=getattr(args, "softclip_v2l_target", "R2R"),
        l2v_target=getattr(args, "softclip_l2v_target", "A2A"),
        roi_tag_weight=getattr(args, "softclip_roi_tag_weight", 1.0),
    )


def check_args(args: argparse.Namespace) -> None:
    """Refuse option combinations the loss does not support (``ValueError`` naming them)."""
    if getattr(args, "softclip_divergence", "kl") != "kl" or getattr(
        args, "softclip_target_grad", False
    ):
        raise ValueError(
            f"--loss {LOSS_NAME} supports --softclip-divergence kl without "
            "--softclip-target-grad only"
        )
    o = _options(args)
    try:
        _validate(o["weight"], o["beta"], o["iou_beta"], o["symmetric"])
    except ValueError as exc:
        raise ValueError(f"--loss {LOSS_NAME}: {exc}") from exc


def from_args(args: argparse.Namespace, *, provider: str | None = None) -> SoftClipAlignClipLoss:
    """Build the loss from the parsed options (divergence must be kl, no target gradient)."""
    check_args(args)
    return SoftClipAlignClipLoss(**_options(args), provider=provider, **dist_kwargs(args))


def register(registry, plugin: str | None = None) -> None:
    """Register ``softclip-alignclip`` (one line in a plugin's hook)."""
    register_loss(
        registry,
        LOSS_NAME,
        from_args,
        plugin=plugin,
        add_arguments=add_arguments,
        help="SoftCLIP + AlignCLIP: convex mix of ROI/tag and Object-IoU soft targets",
        supports_accum=SUPPORTS_ACCUM,
    )
