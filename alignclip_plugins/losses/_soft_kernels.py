"""SoftCLIP's row-block kernels (private): soft, relation-enhanced and CLIP terms.

Against feature targets (the softened self-similarity of eq. 8-9,
:func:`.functional.softclip_targets`): a closed form for the KL / symmetric KL without
target gradients (:class:`SoftClosedKernel`), local autograd otherwise. Against a plugin's
explicit target rows (:class:`TargetSoftKernel`): local autograd. The terms are
:class:`.config.SoftTerms`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

# imported as a module, read at call time (see _kernels.py)
from . import functional as F
from ._kernels import (
    RowKernel,
    arange_like,
    diag_mask,
    gather_diag,
    kernel,
    target_block_rows,
)
from .config import SoftTerms


@dataclass(frozen=True)
class SoftKernelConfig:
    """SoftCLIP's terms against the softened target ``(1-β) e_i + β softmax(y_i)``."""

    terms: SoftTerms
    beta: float
    target_grad: bool = False


def soft_kernel(cfg: SoftKernelConfig) -> RowKernel:
    """SoftCLIP soft (+ relation-enhanced, + CLIP) terms for one direction.

    ``y`` holds the target logits ``s' * a @ b.T`` (or ``(logits, hard rows)``).
    Components in the order of :meth:`SoftTerms.components`, each already multiplied by
    its weight. Closed-form gradients for KL / symmetric KL without target gradients;
    otherwise local autograd on a log-space formulation of the same terms.
    """
    if cfg.terms.divergence == "kl" and not cfg.target_grad:
        return kernel(SoftClosedKernel, cfg)
    return kernel(SoftAutogradKernel, cfg)


class SoftClosedKernel(RowKernel):
    """KL / symmetric-KL SoftCLIP terms with closed-form gradients (no target gradient).

    With x the logits and y the target logits of a row, its positive at column d:
    ``p* = softmax_{j≠d}(x)``, ``q* = softmax_{j≠d}(y)`` (the disentangled rows, eq. 12;
    the softened target's disentangled row is q* for every β > 0), ``z = x - y``, and
    the full rows follow from row scalars: ``p_j = ρ p*_j``, ``t_j = β σ q*_j`` (j ≠ d)
    with ``ρ = 1 - p_d``, ``σ = 1 - q_d``. Every term and its gradient then needs only
    the row sums ``Σ p*_j z_j`` and ``Σ q*_j z_j``; the gradient is
    ``dx_j = p*_j (A z_j + B) + q*_j C`` off the diagonal. All logs stay in log space,
    so rows whose positive takes all the mass (p_d = 1 in float32) stay exact.
    """

    has_fused = True

    def __init__(self, cfg: SoftKernelConfig) -> None:
        self.cfg = cfg
        self.use_rel = cfg.terms.relation
        self.use_clip = cfg.terms.mu != 0
        self.k = 1 + int(self.use_rel) + int(self.use_clip)

    def _scalars(self, xd, yd, lr, mr, u1, u2, w, hard=None):
        """Values (k,) and the gradient's row coefficients from the row statistics.

        ``hard`` (C,) bool marks rows that take the hard label instead of the soft target
        (samples without ROIs): their soft term is the cross-entropy ``-log p_ii`` and their
        relation term is 0.
        """
        terms, beta = self.cfg.terms, self.cfg.beta
        lam, mu, sym = terms.lam, terms.mu, terms.symmetric
        lse = torch.logaddexp(lr, xd)
        mse = torch.logaddexp(mr, yd)
        lpd = xd - lse  # log p_ii
        log_rho = lr - lse  # log Σ_{j≠i} p_ij
        log_sig = mr - mse  # log Σ_{j≠i} q_ij
        rho, pd = log_rho.exp(), lpd.exp()
        cstar = lr - mr  # log p*_j - log q*_j = z_j - c*
        bs = beta * log_sig.exp()  # off-diagonal target mass β σ
        if beta > 0:
            log_1mb = math.log1p(-beta) if beta < 1 else -math.inf
            log_b = math.log(beta)
            ltd = torch.logaddexp(torch.full_like(yd, log_1mb), log_b + yd - mse)  # log t_ii
            e = cstar + log_b + log_sig - log_rho  # log t_j - log p_j = e - z_j (j ≠ i)
            klf = bs * (e - u2) + ltd.exp() * (ltd - lpd)  # KL(t || p)
        else:
            ltd = torch.zeros_like(yd)
            e = torch.zeros_like(yd)
            klf = -lpd
        td = ltd.exp()
        klb = rho * (u1 - e) + pd * (lpd - ltd) if sym else None  # KL(p || t)
        soft = 0.5 * (klf + klb) if sym else klf
        if hard is not None:
            soft = torch.where(hard, -lpd, soft)
        vals = [terms.soft_weight * soft.sum()]
        rf = cstar - u2  # KL(q* || p*)
        rb = u1 - cstar  # KL(p* || q*)
        if self.use_rel:
            rel = 0.5 * (rf + rb) if sym else rf
            if hard is not None:
                rel = torch.where(hard, torch.zeros_like(rel), rel)
            vals.append(lam * rel.sum())
        if self.use_clip:
            vals.append(mu * (-lpd).sum())
        vals = torch.stack(vals)
        if w is None:
            return vals, None
        ws = w[0] * terms.soft_weight
        fs, bsw = (0.5 * ws, 0.5 * ws) if sym else (ws, 0.0 * ws)
        coef_z = bsw * rho
        coef_p = fs * rho
        coef_q = -fs * bs
        dxd = fs * (pd - td)
        if sym:
            coef_p = coef_p - bsw * rho * (e + klb)
            dxd = dxd + bsw * pd * (lpd - ltd - klb)
        if hard is not None:  # d(-log p_ii)/dx = p - e_i
            coef_z = torch.where(hard, torch.zeros_like(coef_z), coef_z)
            coef_p = torch.where(hard, ws * rho, coef_p)
            coef_q = torch.where(hard, torch.zeros_like(coef_q), coef_q)
            dxd = torch.where(hard, ws * (pd - 1.0), dxd)
        j = 1
        if self.use_rel:
            wr = w[j] * lam
            fr = 0.5 * wr if sym else wr
            d_p, d_q, d_z = fr, -fr, None
            if sym:
                d_z = 0.5 * wr
                d_p = d_p - 0.5 * wr * (cstar + rb)
            if hard is not None:
                keep = (~hard).to(rho.dtype)
                d_p, d_q = d_p * keep, d_q * keep
                d_z = None if d_z is None else d_z * keep
            coef_p = coef_p + d_p
            coef_q = coef_q + d_q
            if d_z is not None:
                coef_z = coef_z + d_z
            j += 1
        if self.use_clip:
            wc = w[j] * mu
            coef_p = coef_p + wc * rho
            dxd = dxd + wc * (pd - 1.0)
        return vals, (coef_z, coef_p, coef_q, dxd)

    def eager(self, x, y, diag, w, need_grad):
        y, hard = y if isinstance(y, tuple) else (y, None)
        c, n = x.shape
        if n < 2:  # no negatives: target and prediction are both the one-hot e_i
            return x.new_zeros(self.k), (x.zero_() if need_grad else None), None
        r = arange_like(diag)
        xd, yd = x[r, diag].clone(), y[r, diag].clone()
        x[r, diag] = -math.inf
        y[r, diag] = -math.inf
        lr = torch.logsumexp(x, 1)  # log Σ_{j≠i} e^{x_j}
        mr = torch.logsumexp(y, 1)
        ps = torch.sub(x, lr[:, None]).exp_()  # p*, 0 on the diagonal
        qs = torch.sub(y, mr[:, None]).exp_()  # q*
        z = x.sub_(y)
        z[r, diag] = 0.0
        u1 = torch.einsum("ij,ij->i", ps, z)
        u2 = torch.einsum("ij,ij->i", qs, z)
        vals, coefs = self._scalars(xd, yd, lr, mr, u1, u2, w if need_grad else None, hard)
        dx = None
        if need_grad:
            coef_z, coef_p, coef_q, dxd = coefs
            dx = z.mul_(coef_z[:, None]).add_(coef_p[:, None]).mul_(ps)
            dx.addcmul_(qs, coef_q[:, None])
            dx[r, diag] = dxd
        return vals, dx, None

    def fused(self, x, y, diag, w):
        y, hard = y if isinstance(y, tuple) else (y, None)
        if x.shape[1] < 2:
            return x.new_zeros(self.k), torch.zeros_like(x)
        isd = diag_mask(x, diag)
        xd, yd = gather_diag(x, diag), gather_diag(y, diag)
        xm = x.masked_fill(isd, -math.inf)
        ym = y.masked_fill(isd, -math.inf)
        lr = torch.logsumexp(xm, 1)
        mr = torch.logsumexp(ym, 1)
        ps = torch.exp(xm - lr[:, None])
        qs = torch.exp(ym - mr[:, None])
        z = torch.where(isd, 0.0, x - y)
        u1 = (ps * z).sum(1)
        u2 = (qs * z).sum(1)
        vals, (coef_z, coef_p, coef_q, dxd) = self._scalars(xd, yd, lr, mr, u1, u2, w, hard)
        dx = ps * (coef_z[:, None] * z + coef_p[:, None]) + qs * coef_q[:, None]
        dx = torch.where(isd, dxd[:, None], dx)
        return vals, dx


def _row_divergences(
    lt: Tensor, lp: Tensor, valid: Tensor, terms: SoftTerms, kl_rows: Tensor | None
) -> Tensor:
    """D(t_i, p_i) per row over the ``valid`` entries, from log-probabilities (NaN-safe);
    ``kl_rows`` (C,) bool take ``KL(t || p)`` whatever ``D``."""
    t = torch.where(valid, lt.exp(), 0.0)
    p = torch.where(valid, lp.exp(), 0.0)
    lt_v = torch.where(valid & (lt > -math.inf), lt, 0.0)
    lp_v = torch.where(valid, lp, 0.0)
    forward = (t * (lt_v - lp_v)).sum(1)
    if terms.divergence == "js":
        lm = torch.logaddexp(torch.where(valid, lt, 0.0), lp_v) - math.log(2.0)
        out = 0.5 * (t * (lt_v - lm)).sum(1) + 0.5 * (p * (lp_v - lm)).sum(1)
    elif terms.symmetric:
        out = 0.5 * (forward + (p * (lp_v - lt_v)).sum(1))
    else:
        return forward
    return out if kl_rows is None else torch.where(kl_rows, forward, out)


def _with_zero_rows(log_rows: Tensor, valid: Tensor, terms: SoftTerms, kl_rows: Tensor | None):
    """``kl_rows`` plus, under the symmetric KL, the rows with a zero target entry (their
    reverse KL is infinite)."""
    if terms.divergence != "kl" or not terms.symmetric:
        return kl_rows
    zero = (torch.isneginf(log_rows) & valid).any(1)
    return zero if kl_rows is None else zero | kl_rows


def soft_terms_from_log_targets(
    x: Tensor,
    lt: Tensor,
    lqs: Tensor | None,
    mask: Tensor,
    terms: SoftTerms,
    kl_rows: Tensor | None = None,
) -> Tensor:
    """SoftCLIP's (weighted) components for explicit log targets, differentiable in ``x``.

    ``x`` (C, N) logits; ``lt`` (C, N) log of the target rows; ``lqs`` (C, N) log of the
    disentangled target rows (eq. 12; ignored on the diagonal); ``mask`` (C, N) true at
    each row's positive; ``kl_rows`` (C,) rows that take the KL alone (the hard-label rows:
    their soft term is then ``-log p_ii``). A row whose disentangled target has no mass
    (all ``-inf`` off the diagonal) adds nothing to the relation term.
    """
    n = x.shape[1]
    every = torch.ones_like(mask)
    lp = torch.log_softmax(x, 1)
    soft_kl = _with_zero_rows(lt, every, terms, kl_rows)
    vals = [terms.soft_weight * _row_divergences(lt, lp, every, terms, soft_kl).sum()]
    if terms.relation:
        if n < 2 or lqs is None:
            vals.append(x.sum() * 0.0)
        else:
            lps = torch.log_softmax(x.masked_fill(mask, -math.inf), 1)
            has_mass = torch.isfinite(lqs.masked_fill(mask, -math.inf)).any(1, keepdim=True)
            valid = ~mask & has_mass
            lqs = torch.where(has_mass, lqs, 0.0)
            rel_kl = _with_zero_rows(lqs, valid, terms, kl_rows)
            vals.append(terms.lam * _row_divergences(lqs, lps, valid, terms, rel_kl).sum())
    if terms.mu != 0:
        vals.append(terms.mu * -(lp[mask]).sum())
    return torch.stack(vals)


def soft_terms_autograd(
    x: Tensor, y: Tensor, diag: Tensor, cfg: SoftKernelConfig, hard: Tensor | None = None
) -> Tensor:
    """The (weighted) components of :func:`soft_kernel` as a differentiable (k,) tensor.

    ``hard`` (C,) bool: rows taking the hard label (soft term ``-log p_ii``, no relation).
    """
    mask = diag_mask(x, diag)
    lt = F.softclip_target_log_rows(y, mask, cfg.beta)
    # the disentangled target does not depend on β: softmax of y off the diagonal
    lqs = F.neg_disentangle_log(y, mask) if x.shape[1] > 1 else None
    if hard is not None:
        lt = torch.where(hard[:, None], torch.where(mask, 0.0, -math.inf).to(lt.dtype), lt)
        lqs = None if lqs is None else lqs.masked_fill(hard[:, None], -math.inf)
    return soft_terms_from_log_targets(x, lt, lqs, mask, cfg.terms, kl_rows=hard)


def _local_grad(fn, x: Tensor, w: Tensor, need_grad: bool, extra: tuple = ()):
    """Values of ``fn(x, *extra)`` and, by local autograd, ``d(vals · w)/d(x, *extra)``."""
    with torch.enable_grad():
        inputs = [x.detach().requires_grad_(need_grad)]
        inputs += [e.detach().requires_grad_(need_grad) for e in extra]
        vals = fn(*inputs)
        if not need_grad:
            return vals.detach(), None, None
        grads = torch.autograd.grad((vals * w).sum(), inputs, allow_unused=True)
    dx = grads[0] if grads[0] is not None else torch.zeros_like(x)
    return vals.detach(), dx, (grads[1] if extra else None)


class SoftAutogradKernel(RowKernel):
    """SoftCLIP terms for JS or target gradients: local autograd on the row block."""

    def __init__(self, cfg: SoftKernelConfig) -> None:
        self.cfg = cfg

    def eager(self, x, y, diag, w, need_grad):
        y, hard = y if isinstance(y, tuple) else (y, None)
        if self.cfg.target_grad:
            return _local_grad(
                lambda xg, yg: soft_terms_autograd(xg, yg, diag, self.cfg, hard), x, w,
                need_grad, (y,),
            )  # fmt: skip
        return _local_grad(
            lambda xg: soft_terms_autograd(xg, y, diag, self.cfg, hard), x, w, need_grad
        )


class TargetSoftKernel(RowKernel):
    """SoftCLIP terms against a plugin's target (:class:`.targets.Target`), ``y`` a
    RowBlock; local autograd on the block."""

    def __init__(self, target, terms: SoftTerms) -> None:
        self.target, self.terms = target, terms

    def eager(self, x, y, diag, w, need_grad):
        lt = target_block_rows(self.target, "log_rows", y, x)
        mask = diag_mask(x, diag)
        lqs = F.neg_disentangle_log(lt, mask) if x.shape[1] > 1 else None
        return _local_grad(
            lambda xg: soft_terms_from_log_targets(xg, lt, lqs, mask, self.terms), x, w, need_grad
        )
