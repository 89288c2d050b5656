"""Direct ``N x N`` implementations of every loss: the readable form of each formula.

Written from docs/methods.md and independently of the row-block engine: full matrices,
explicit targets, explicit divergences, loops where they read better. Nothing here is
fast; use float64 and small N. The tests check the engine against these, and
:mod:`alignclip_plugins.testing` uses them. Options and defaults are the configs'
(:mod:`.config`); each function returns the same named components as its engine
counterpart in :mod:`.functional`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .config import (
    GuidanceMixConfig,
    LabelSmoothingConfig,
    ObjectIouConfig,
    SoftClipAlignClipConfig,
    SoftClipConfig,
    SoftTargetConfig,
)

__all__ = [
    "clip",
    "cross_entropy",
    "explicit_targets_loss",
    "guidance_mix",
    "iou_matrix",
    "js",
    "kl",
    "label_smoothing",
    "neg_disentangle",
    "object_iou",
    "object_iou_targets",
    "softclip",
    "softclip_alignclip",
    "softmax_rows",
    "sym_kl",
]


# ---------------------------------------------------------------------------------------
# Distributions and divergences, per row
# ---------------------------------------------------------------------------------------


def softmax_rows(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
    """P(A, B) = softmax(s A Bᵀ), row-wise (eq. 1-2, 6-7)."""
    return torch.softmax(s * a @ b.T, dim=1)


def kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p_i || q_i) per row, with 0 log 0 = 0."""
    return (torch.xlogy(p, p) - torch.xlogy(p, q)).sum(1)


def sym_kl(p: Tensor, q: Tensor) -> Tensor:
    """½ (KL(p || q) + KL(q || p)) per row (SoftCLIP eq. 15)."""
    return 0.5 * (kl(p, q) + kl(q, p))


def js(p: Tensor, q: Tensor) -> Tensor:
    m = 0.5 * (p + q)
    return 0.5 * kl(p, m) + 0.5 * kl(q, m)


def cross_entropy(y: Tensor, p: Tensor) -> Tensor:
    """H(y_i, p_i) per row."""
    return -(torch.xlogy(y, p)).sum(1)


def neg_disentangle(p: Tensor) -> Tensor:
    """Eq. 12: p*_ij = p_ij / Σ_{k≠i} p_ik for j ≠ i → (N, N-1)."""
    n = p.shape[0]
    rows = []
    for i in range(n):
        keep = [j for j in range(n) if j != i]
        rows.append(p[i, keep] / p[i, keep].sum())
    return torch.stack(rows) if rows else p[:, :0]


def _divergence(y: Tensor, p: Tensor, divergence: str, symmetric: bool) -> Tensor:
    """D(y_i, p_i) per row; under the symmetric KL a row of y with a zero entry takes the
    KL alone (its reverse KL would be infinite)."""
    if divergence == "js":
        return js(y, p)
    if not symmetric:
        return kl(y, p)
    rows = [
        kl(y[i : i + 1], p[i : i + 1])
        if bool((y[i] == 0).any())
        else sym_kl(y[i : i + 1], p[i : i + 1])
        for i in range(y.shape[0])
    ]
    return torch.cat(rows) if rows else y.new_zeros(0)


def explicit_targets_loss(
    v: Tensor, t: Tensor, s: Tensor, targets: tuple[Tensor, Tensor], kind: str = "ce"
) -> Tensor:
    """``½ (mean_i D(y_i, P_i(I,T)) + mean_j D(y'_j, P_j(T,I)))`` for explicit (N, N) targets,
    ``D`` the cross-entropy (``kind="ce"``) or ``KL(y || P)`` (``"kl"``)."""
    if kind not in ("ce", "kl"):
        raise ValueError("kind must be 'ce' or 'kl'")
    div = cross_entropy if kind == "ce" else kl
    total = 0.0
    for y, (a, b) in zip(targets, ((v, t), (t, v))):
        total = total + 0.5 * div(y, softmax_rows(a, b, s)).mean()
    return total


# ---------------------------------------------------------------------------------------
# Losses
# ---------------------------------------------------------------------------------------


def clip(v: Tensor, t: Tensor, s: Tensor) -> Tensor:
    """Hard CLIP: one-hot targets."""
    eye = torch.eye(v.shape[0], dtype=v.dtype)
    return explicit_targets_loss(v, t, s, (eye, eye))


def label_smoothing(
    v: Tensor, t: Tensor, s: Tensor, alpha: float = LabelSmoothingConfig.alpha
) -> Tensor:
    """Targets (1-α) e_i + α/(N-1) on every negative (SoftCLIP eq. 5)."""
    n = v.shape[0]
    eye = torch.eye(n, dtype=v.dtype)
    y = eye if n == 1 else (1 - alpha) * eye + alpha / (n - 1) * (1 - eye)
    return explicit_targets_loss(v, t, s, (y, y))


def iou_matrix(image_objects: Tensor, text_objects: Tensor) -> Tensor:
    """IoU of Python sets built from the id rows (negative ids are padding), float64."""
    o = [{int(x) for x in row if x >= 0} for row in image_objects.tolist()]
    q = [{int(x) for x in row if x >= 0} for row in text_objects.tolist()]
    out = torch.zeros(len(o), len(q), dtype=torch.float64)
    for i, a in enumerate(o):
        for j, b in enumerate(q):
            union = len(a | b)
            out[i, j] = len(a & b) / union if union else 0.0
    return out


def object_iou_targets(
    image_objects: Tensor, text_objects: Tensor, beta: float = ObjectIouConfig.beta
) -> tuple[Tensor, Tensor]:
    """y_i = (1-β) e_i + β S_i / Σ_j S_ij and y'_j = (1-β) e_j + β S_·j / Σ_i S_ij, S_ii = 1."""
    n = image_objects.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    S = iou_matrix(image_objects, text_objects)
    S = S * (1 - eye) + eye
    v2l = (1 - beta) * eye + beta * S / S.sum(1, keepdim=True)
    l2v = (1 - beta) * eye + beta * (S / S.sum(0, keepdim=True)).T
    return v2l, l2v


def object_iou(v, t, s, image_objects, text_objects, beta: float = ObjectIouConfig.beta) -> Tensor:
    """AlignCLIP's Object-IoU loss: cross-entropy with :func:`object_iou_targets`."""
    return explicit_targets_loss(v, t, s, object_iou_targets(image_objects, text_objects, beta))


def _masked(r: Tensor, a: Tensor, roi_valid: Tensor | None) -> tuple[Tensor, Tensor]:
    """Samples without ROIs have zero ROI / tag vectors (logit 0 as target columns)."""
    if roi_valid is None:
        return r, a
    m = roi_valid.to(r.dtype)[:, None]
    return r * m, a * m


def _soft_and_relation(v, t, src: dict, s, forms, cfg: SoftTargetConfig, roi_valid):
    """(L_soft, L_re) of SoftCLIP with the given supervision forms (eq. 8-15). Rows of
    samples without ROIs take the hard label in ROI/tag forms: H(e_i, p_i), no relation."""
    n = v.shape[0]
    eye = torch.eye(n, dtype=v.dtype)
    soft = relation = 0.0
    for form, p in ((forms[0], softmax_rows(v, t, s)), (forms[1], softmax_rows(t, v, s))):
        q = softmax_rows(src[form[0]], src[form[2]], s.detach())
        if not cfg.target_grad:
            q = q.detach()
        target = (1 - cfg.beta) * eye + cfg.beta * q
        soft_rows = _divergence(target, p, cfg.divergence, cfg.symmetric)
        # the disentangled target is q* for every β > 0; β = 0 is that limit
        target_star = neg_disentangle(target if cfg.beta > 0 else q)
        rel_rows = _divergence(target_star, neg_disentangle(p), cfg.divergence, cfg.symmetric)
        if roi_valid is not None and form[0] in "RA":
            soft_rows = torch.where(roi_valid, soft_rows, cross_entropy(eye, p))
            rel_rows = torch.where(roi_valid, rel_rows, torch.zeros_like(rel_rows))
        soft = soft + 0.5 * soft_rows.mean()
        relation = relation + 0.5 * rel_rows.mean()
    return soft, relation


def _roi_tag(r, a, s, roi_valid) -> Tensor:
    """Hard CLIP between ROI and tag embeddings, over the samples with ROIs."""
    if roi_valid is None:
        return clip(r, a, s)
    return clip(r[roi_valid], a[roi_valid], s)


def _softclip_terms(cfg, soft, relation, v, t, r, a, s, roi_valid) -> dict[str, Tensor]:
    """SoftCLIP's weighted terms from L_soft and L_re (zero-weight terms omitted)."""
    out = {"soft": soft}
    if cfg.relation_enhanced and cfg.lam != 0:
        out["relation"] = cfg.lam * relation
    if cfg.mu != 0:
        out["clip"] = cfg.mu * clip(v, t, s)
    if cfg.roi_tag_weight:
        out["roi_tag"] = cfg.roi_tag_weight * _roi_tag(r, a, s, roi_valid)
    return out


def softclip(
    v, t, r, a, s, config: SoftClipConfig | None = None, *, roi_valid=None, **options
) -> dict[str, Tensor]:
    """SoftCLIP eq. 16 plus the ROI-tag term: ``{"soft", "relation", "clip", "roi_tag"}``
    (zero-weight terms omitted)."""
    cfg = SoftClipConfig.resolve(config, options)
    r, a = _masked(r, a, roi_valid)
    forms = (cfg.v2l_target, cfg.l2v_target)
    soft, re = _soft_and_relation(v, t, {"R": r, "A": a}, s, forms, cfg, roi_valid)
    return _softclip_terms(cfg, soft, re, v, t, r, a, s, roi_valid)


def guidance_mix(
    v, t, r, a, s, config: GuidanceMixConfig | None = None, *, roi_valid=None, **options
) -> dict[str, Tensor]:
    """SoftCLIP Fig. 4a: γ L(R,A) + (1-γ) L(I,T), ``L = L̃_soft + λ L̃_re``, no CLIP term."""
    cfg = GuidanceMixConfig.resolve(config, options)
    r, a = _masked(r, a, roi_valid)
    src = {"R": r, "A": a, "I": v, "T": t}
    out = {}
    for suffix, w, forms in (
        ("ra", cfg.gamma, (cfg.v2l_target, cfg.l2v_target)),
        ("it", 1 - cfg.gamma, ("I2I", "T2T")),
    ):
        if w == 0:
            continue
        soft, re = _soft_and_relation(v, t, src, s, forms, cfg, roi_valid)
        out[f"soft_{suffix}"] = w * soft
        if cfg.relation_enhanced and cfg.lam != 0:
            out[f"relation_{suffix}"] = w * cfg.lam * re
    return out


def softclip_alignclip(
    v, t, r, a, s, image_objects, text_objects, config: SoftClipAlignClipConfig | None = None,
    *, roi_valid=None, **options,
) -> dict[str, Tensor]:  # fmt: skip
    """SoftCLIP's loss against ω × SoftCLIP's target + (1-ω) × the Object-IoU target.

    Samples without ROIs take the hard label e_i in place of SoftCLIP's target. Under the
    symmetric KL, a target row with a zero entry takes the KL alone; a row whose target has
    no mass off the diagonal adds no relation term.
    """
    cfg = SoftClipAlignClipConfig.resolve(config, options)
    n = v.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    r, a = _masked(r, a, roi_valid)
    src = {"R": r, "A": a}
    iou_targets = object_iou_targets(image_objects, text_objects, cfg.iou_beta)
    soft = relation = 0.0
    for form, y_iou, p in zip(
        (cfg.v2l_target, cfg.l2v_target),
        iou_targets,
        (softmax_rows(v, t, s), softmax_rows(t, v, s)),
    ):
        y_soft = (1 - cfg.beta) * eye + cfg.beta * softmax_rows(
            src[form[0]], src[form[2]], s.detach()
        )
        if roi_valid is not None:
            y_soft = torch.where(roi_valid[:, None], y_soft, eye)
        y = (cfg.weight * y_soft + (1 - cfg.weight) * y_iou).detach()
        soft = soft + 0.5 * _divergence(y, p, "kl", cfg.symmetric).mean()
        has_mass = (y * (1 - eye)).sum(1) > 0
        ys, ps = neg_disentangle(y)[has_mass], neg_disentangle(p)[has_mass]
        relation = relation + 0.5 * _divergence(ys, ps, "kl", cfg.symmetric).sum() / n
    return _softclip_terms(cfg, soft, relation, v, t, r, a, s, roi_valid)
