"""Direct float64 implementations of METHODS.md §1-4 (naive N x N), for the tests only.

Written from the specification, independently of ``alignclip_plugins.losses``: full
matrices, explicit targets, explicit divergences.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _f64(*ts: Tensor) -> list[Tensor]:
    return [t.detach().double() if not t.requires_grad else t.double() for t in ts]


def softmax_rows(a: Tensor, b: Tensor, s: Tensor) -> Tensor:
    """P(A, B) = softmax(s A Bᵀ), row-wise."""
    return torch.softmax(s * a @ b.T, dim=1)


def xlogy_ratio(p: Tensor, q: Tensor) -> Tensor:
    """p log(p / q) elementwise with 0 log 0 = 0."""
    return torch.xlogy(p, p) - torch.xlogy(p, q)


def kl(p: Tensor, q: Tensor) -> Tensor:
    """KL(p_i || q_i) per row."""
    return xlogy_ratio(p, q).sum(1)


def sym_kl(p: Tensor, q: Tensor) -> Tensor:
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
    return torch.stack(rows)


def clip(v: Tensor, t: Tensor, s: Tensor) -> Tensor:
    n = v.shape[0]
    eye = torch.eye(n, dtype=v.dtype)
    return 0.5 * (
        cross_entropy(eye, softmax_rows(v, t, s)).mean()
        + cross_entropy(eye, softmax_rows(t, v, s)).mean()
    )


def label_smoothing(v: Tensor, t: Tensor, s: Tensor, alpha: float) -> Tensor:
    n = v.shape[0]
    eye = torch.eye(n, dtype=v.dtype)
    y = (1 - alpha) * eye + alpha / (n - 1) * (1 - eye)
    return 0.5 * (
        cross_entropy(y, softmax_rows(v, t, s)).mean()
        + cross_entropy(y, softmax_rows(t, v, s)).mean()
    )


def _target(form: str, r: Tensor, a: Tensor, v: Tensor, t: Tensor, s: Tensor) -> Tensor:
    src = {"R": r, "A": a, "I": v, "T": t}
    return softmax_rows(src[form[0]], src[form[2]], s.detach())


def soft_and_relation(
    v, t, r, a, s, *, beta, v2l, l2v, divergence="kl", symmetric=True, target_grad=False
) -> tuple[Tensor, Tensor]:
    """(L_soft, L_re) of SoftCLIP §3 with the chosen divergence and targets."""
    n = v.shape[0]
    eye = torch.eye(n, dtype=v.dtype)
    tv, tl = _target(v2l, r, a, v, t, s), _target(l2v, r, a, v, t, s)
    if not target_grad:
        tv, tl = tv.detach(), tl.detach()
    pt_v = (1 - beta) * eye + beta * tv
    pt_l = (1 - beta) * eye + beta * tl
    p_it, p_ti = softmax_rows(v, t, s), softmax_rows(t, v, s)
    if divergence == "js":
        div = js
    elif symmetric:
        div = sym_kl
    else:
        div = kl
    soft = 0.5 * (div(pt_v, p_it).mean() + div(pt_l, p_ti).mean())
    re = 0.5 * (
        div(neg_disentangle(pt_v), neg_disentangle(p_it)).mean()
        + div(neg_disentangle(pt_l), neg_disentangle(p_ti)).mean()
    )
    return soft, re


def softclip(
    v,
    t,
    r,
    a,
    s,
    *,
    beta=0.3,
    lam=1.0,
    mu=1.0,
    relation_enhanced=True,
    symmetric=True,
    v2l_target="R2R",
    l2v_target="A2A",
    divergence="kl",
    target_grad=False,
    roi_tag_weight=0.0,
) -> dict[str, Tensor]:
    soft, re = soft_and_relation(
        v,
        t,
        r,
        a,
        s,
        beta=beta,
        v2l=v2l_target,
        l2v=l2v_target,
        divergence=divergence,
        symmetric=symmetric,
        target_grad=target_grad,
    )
    out = {"soft": soft}
    if relation_enhanced and lam != 0:
        out["relation"] = lam * re
    if mu != 0:
        out["clip"] = mu * clip(v, t, s)
    if roi_tag_weight:
        out["roi_tag"] = roi_tag_weight * clip(r, a, s)
    return out


def guidance_mix(
    v,
    t,
    r,
    a,
    s,
    *,
    gamma,
    beta=0.3,
    lam=1.0,
    relation_enhanced=True,
    symmetric=True,
    v2l_target="R2R",
    l2v_target="A2A",
    divergence="kl",
    target_grad=False,
) -> dict[str, Tensor]:
    out = {}
    for suffix, w, (f1, f2) in (
        ("ra", gamma, (v2l_target, l2v_target)),
        ("it", 1 - gamma, ("I2I", "T2T")),
    ):
        if w == 0:
            continue
        soft, re = soft_and_relation(
            v,
            t,
            r,
            a,
            s,
            beta=beta,
            v2l=f1,
            l2v=f2,
            divergence=divergence,
            symmetric=symmetric,
            target_grad=target_grad,
        )
        out[f"soft_{suffix}"] = w * soft
        if relation_enhanced and lam != 0:
            out[f"relation_{suffix}"] = w * lam * re
    return out


def iou_matrix(image_objects: Tensor, text_objects: Tensor) -> Tensor:
    """IoU of Python sets built from the id rows (negative ids are padding)."""
    o = [{int(x) for x in row if x >= 0} for row in image_objects.tolist()]
    q = [{int(x) for x in row if x >= 0} for row in text_objects.tolist()]
    out = torch.zeros(len(o), len(q), dtype=torch.float64)
    for i, a in enumerate(o):
        for j, b in enumerate(q):
            union = len(a | b)
            out[i, j] = len(a & b) / union if union else 0.0
    return out


def object_iou(v, t, s, image_objects, text_objects, *, beta) -> Tensor:
    n = v.shape[0]
    eye = torch.eye(n, dtype=torch.float64)
    S = iou_matrix(image_objects, text_objects)
    S = S * (1 - eye) + eye
    y = (1 - beta) * eye + beta * S / S.sum(1, keepdim=True)
    y2 = (1 - beta) * eye + beta * (S / S.sum(0, keepdim=True)).T  # row j: S_{·j} / Σ_i S_ij
    return 0.5 * (
        cross_entropy(y, softmax_rows(v, t, s)).mean()
        + cross_entropy(y2, softmax_rows(t, v, s)).mean()
    )
