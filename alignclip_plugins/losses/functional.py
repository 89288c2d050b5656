"""Soft-label contrastive losses as pure tensor functions (METHODS.md §1-4).

Every function takes L2-normalised features ``(N, D)`` and ``logit_scale``, the
multiplier ``s = 1/τ`` (already exponentiated, a 0-d tensor), and returns float32 (or
float64 for float64 inputs) values equal to the formulas of METHODS.md.

Memory and speed: nothing of size ``N x N`` is kept. Each direction (image→text rows,
text→image rows) is processed in row blocks of ``C x N``; for each block the loss and its
exact gradient with respect to the block's logits are computed in closed form (or by
local autograd for the rarer options), and the gradient is immediately contracted back
to the ``(N, D)`` features. The backward pass then only scales the stored feature
gradients (a custom ``autograd.Function``; no recomputation, no saved logits). The
result is exact: the same numbers as the direct formulas up to floating-point rounding.

Element-wise work per block runs either as eager in-place kernels or, on CUDA (when Triton
is available), as ``torch.compile``-fused kernels that never write the intermediate
``C x N`` quantities (compiled once per loss configuration on the first step; see
:func:`set_kernel_mode` / ``ALIGNCLIP_LOSS_KERNELS=eager|fused|compile|auto``).

The same engine serves the ``nn.Module`` losses, which gather features across ranks and
pass ``rows`` (local or global) and ``cols`` (global) with the global index of each row's
positive (upstream's ``local_loss`` semantics).
"""

from __future__ import annotations

import functools
import math
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

__all__ = [
    "SUPERVISION_FORMS",
    "DIVERGENCES",
    "label_smoothing_loss",
    "softclip_loss",
    "guidance_mix_loss",
    "object_iou_matrix",
    "object_iou_loss",
    "neg_disentangle",
    "clip_loss",
    "set_kernel_mode",
    "label_smoothing_targets",
    "mask_rois",
    "softclip_targets",
    "object_iou_targets",
]

SUPERVISION_FORMS = ("R2R", "A2A", "R2A", "A2R")
DIVERGENCES = ("kl", "js")

#: Default size of one row block, in elements of ``C x N`` (2**26 fp32 = 256 MiB).
DEFAULT_CHUNK_ELEMENTS = 1 << 26


# ---------------------------------------------------------------------------------------
# Plan: which row problems make up a loss
# ---------------------------------------------------------------------------------------

# A kernel gets one row block and returns its per-component row sums and gradients:
#   kernel(x, y, diag, w, need_grad) -> (values (k,), dx (C, N) | None, dy (C, N) | None)
# x: logits s * rows @ cols.T (owned by the kernel; may be overwritten), y: target logits
# (or IoU block, or None), diag: (C,) column index of each row's positive, w: (k,) weight
# of each component in the gradient (already divided by the number of rows).
Kernel = Callable[[Tensor, Tensor | None, Tensor, Tensor, bool], tuple]


@dataclass(frozen=True)
class _Term:
    """One loss term on the logits of a direction (several terms share the logits)."""

    kernel: Kernel
    comps: tuple[int, ...]  # plan component index of each kernel output
    # ("feat" | "iou", rows idx, cols idx), or ("mix", feat rows, feat cols, iou rows, iou cols);
    # ("feat", rows, cols, valid rows): rows whose valid flag is 0 take the hard label;
    # ("valid", valid rows, valid cols): a hard CLIP term over valid rows and columns only
    target: tuple | None = None
    target_grad: bool = False


@dataclass(frozen=True)
class _Direction:
    """Rows ``ts[rows]`` against columns ``ts[cols]``; row r's positive is ``offset + r``."""

    rows: int
    cols: int
    offset: int
    terms: tuple[_Term, ...]
    weight: float = 0.5  # ½ (v2l + l2v)


@dataclass(frozen=True)
class _Plan:
    components: tuple[str, ...]
    directions: tuple[_Direction, ...]
    chunk_rows: int | None = None
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    meta: dict = field(default_factory=dict, compare=False)


def _compute_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` honouring autocast; outside autocast ``a`` is cast to ``b``'s dtype."""
    if torch.is_autocast_enabled(a.device.type):
        return torch.mm(a, b)
    return torch.mm(a.to(b.dtype), b)


def _logits(rows: Tensor, cols: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """``scale * rows @ cols.T`` as a fresh ``dtype`` tensor (scale folded into the rows)."""
    out = _mm(rows * scale.to(rows.dtype), cols.t())
    return out.to(dtype) if out.dtype != dtype else out


def _canonical_sets(ids: Tensor) -> tuple[Tensor, Tensor]:
    """Sort each row, drop duplicates and negatives (padding): (ids with -1 pads, sizes)."""
    if ids.dim() != 2:
        raise ValueError(
            f"object ids must be a 2-D (N, M) tensor padded with -1, got {tuple(ids.shape)}"
        )
    if ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(f"object ids must be an integer tensor, got {ids.dtype}")
    ids = ids.long()
    if ids.shape[1] == 0:
        return ids, torch.zeros(ids.shape[0], dtype=torch.long, device=ids.device)
    s = ids.sort(dim=1).values
    valid = s >= 0
    valid[:, 1:] &= s[:, 1:] != s[:, :-1]
    s = torch.where(valid, s, torch.full_like(s, -1))
    return s, valid.sum(1)


def _intersections(a: Tensor, b: Tensor) -> Tensor:
    """|A_i ∩ B_j| of canonical sets ``a`` (C, M) and ``b`` (N, M'): (C, N) uint8/int32.

    An inverted index over the ids present in ``a``: a (U+1, N) membership table of the
    columns, gathered once per set slot of ``a`` (M passes over C x N bytes instead of
    M x M' comparisons).
    """
    c, n = a.shape[0], b.shape[0]
    count_dtype = torch.uint8 if a.shape[1] < 256 else torch.int32
    vocab = torch.unique(a[a >= 0]) if a.numel() else a.new_zeros(0)
    u = vocab.numel()
    if u == 0 or b.shape[1] == 0:
        return torch.zeros(c, n, dtype=count_dtype, device=a.device)
    pos_b = torch.searchsorted(vocab, b.clamp_min(0)).clamp_max(u - 1)
    hit = (vocab[pos_b] == b) & (b >= 0)
    table = torch.zeros(u + 1, n, dtype=count_dtype, device=a.device)  # row u: padding
    col = torch.arange(n, device=a.device)[:, None].expand_as(b)
    table[pos_b[hit], col[hit]] = 1
    pos_a = torch.searchsorted(vocab, a.clamp_min(0)).clamp_max(u - 1)
    pos_a = torch.where(a >= 0, pos_a, u)
    inter = table[pos_a[:, 0]]
    for m in range(1, a.shape[1]):
        inter += table[pos_a[:, m]]
    return inter


def _block_rows(plan: _Plan, n_rows: int, n_cols: int) -> int:
    if plan.chunk_rows is not None:
        return max(1, min(n_rows, plan.chunk_rows))
    return max(1, min(n_rows, plan.chunk_elements // max(n_cols, 1)))


def _run_plan(
    plan: _Plan,
    scale: Tensor,
    ts: Sequence[Tensor],
    weights: Tensor | None,
    need_grad: bool,
) -> tuple[Tensor, Tensor | None, list[Tensor | None]]:
    """Evaluate ``plan``: component values (K,), d/d scale, d/d each of ``ts``.

    ``weights`` (K,) weights each component in the gradient (default: all ones).
    Values are always the unweighted components.
    """
    floats = [t for t in ts if t.dtype.is_floating_point]
    cdtype = _compute_dtype(floats)
    device = scale.device if not floats else floats[0].device
    k = len(plan.components)
    if weights is None:
        weights = torch.ones(k, dtype=cdtype, device=device)
    weights = weights.to(device=device, dtype=cdtype)
    s = scale.detach().to(device=device, dtype=cdtype)
    want = [need_grad and t.dtype.is_floating_point and t.requires_grad for t in ts]
    grads: list[Tensor | None] = [
        torch.zeros(t.shape, dtype=cdtype, device=device) if w else None for t, w in zip(ts, want)
    ]
    want_scale = need_grad and scale.requires_grad
    gscale = torch.zeros((), dtype=cdtype, device=device) if want_scale else None
    sets: dict[int, tuple[Tensor, Tensor]] = {}
    for term in (t for d in plan.directions for t in d.terms):
        for idx in _set_indices(term.target):
            if idx not in sets:
                sets[idx] = _canonical_sets(ts[idx])
    # per-component contributions; plain indexing only (no host-to-device copies, which
    # would synchronise the stream once per block)
    contrib: list[list[Tensor]] = [[] for _ in range(k)]

    for d in plan.directions:
        rows, cols = ts[d.rows], ts[d.cols]
        n, n_cols = rows.shape[0], cols.shape[0]
        if n == 0:
            continue
        step = _block_rows(plan, n, n_cols)
        scale_rows = d.weight / n  # mean over this direction's rows, times its weight
        term_w = [torch.stack([weights[c] for c in term.comps]) * scale_rows for term in d.terms]
        for r0 in range(0, n, step):
            r1 = min(n, r0 + step)
            q = rows[r0:r1]
            diag = torch.arange(d.offset + r0, d.offset + r1, device=device)
            dx_total = None
            x0 = _logits(q, cols, s, cdtype)
            for i, term in enumerate(d.terms):
                x = x0 if i == len(d.terms) - 1 else x0.clone()
                y = _target_block(term.target, ts, sets, r0, r1, s, cdtype)
                vals, dx, dy = term.kernel(x, y, diag, term_w[i], need_grad)
                for j, c in enumerate(term.comps):
                    contrib[c].append(vals[j] * scale_rows)
                if dx is not None:
                    dx_total = dx if dx_total is None else dx_total.add_(dx)
                if dy is not None and term.target is not None and term.target[0] == "feat":
                    ti, tj = term.target[1], term.target[2]
                    _contract(dy, ts[ti], ts[tj], r0, r1, s, grads[ti], grads[tj], None)
                del x, y, dx, dy
            del x0
            if dx_total is not None:
                _contract(dx_total, rows, cols, r0, r1, s, grads[d.rows], grads[d.cols], gscale)
            del dx_total
    zero = torch.zeros((), dtype=cdtype, device=device)
    values = torch.stack([torch.stack(c).sum().to(cdtype) if c else zero for c in contrib])
    return values, gscale, grads


def _set_indices(target: tuple | None) -> tuple[int, ...]:
    """Input indices of the object-id sets a term's target reads."""
    if target is None:
        return ()
    return {"iou": target[1:3], "mix": target[3:5]}.get(target[0], ())


def _target_block(target: tuple | None, ts, sets: dict, r0: int, r1: int, s: Tensor, dtype):
    """What a kernel gets as ``y`` for rows ``r0:r1``: target logits, canonical id sets
    ``(row sets, row sizes, column sets, column sizes)``, both (``mix``), or None."""
    if target is None:
        return None
    kind = target[0]
    if kind == "feat":
        logits = _logits(ts[target[1]][r0:r1], ts[target[2]], s, dtype)
        if len(target) > 3:  # + rows without ROIs: (logits, hard-label rows)
            return logits, ts[target[3]][r0:r1, 0] < 0.5
        return logits
    if kind == "valid":  # (valid rows, valid columns, global rows / global valid rows)
        rows, cols = ts[target[1]][r0:r1, 0] > 0.5, ts[target[2]][:, 0] > 0.5
        return rows, cols, cols.numel() / cols.sum().clamp_min(1).to(dtype)
    if kind == "iou":
        (a, sa), (b, sb) = sets[target[1]], sets[target[2]]
        return (a[r0:r1], sa[r0:r1], b, sb)
    if kind == "mix":
        feat = _target_block(("feat", *target[1:3]), ts, sets, r0, r1, s, dtype)
        return feat, _target_block(("iou", *target[3:5]), ts, sets, r0, r1, s, dtype)
    raise ValueError(f"unknown target kind {kind!r}")


def _contract(
    g: Tensor,
    rows: Tensor,
    cols: Tensor,
    r0: int,
    r1: int,
    s: Tensor,
    grows: Tensor | None,
    gcols: Tensor | None,
    gscale: Tensor | None,
) -> None:
    """Given dL/dlogits ``g`` (C, N) of ``s * rows[r0:r1] @ cols.T``, add the gradients."""
    q = rows[r0:r1]
    if grows is not None or gscale is not None:
        gk = _mm(g, cols).to(s.dtype)  # (C, D) = dL/d(s q)
        if grows is not None:
            grows[r0:r1].add_(gk * s)
        if gscale is not None:
            gscale.add_((gk * q.to(s.dtype)).sum())
    if gcols is not None:
        gcols.add_(_mm(g.t(), q).to(s.dtype) * s)


class _FusedLoss(torch.autograd.Function):
    """Values of a plan; gradients computed in the forward, scaled in the backward."""

    @staticmethod
    def forward(ctx, plan: _Plan, scale: Tensor, *ts: Tensor) -> Tensor:  # type: ignore[override]
        values, gscale, grads = _run_plan(plan, scale, ts, None, need_grad=True)
        ctx.plan = plan
        ctx.autocast = (
            torch.is_autocast_enabled(values.device.type),
            torch.get_autocast_dtype(values.device.type),
        )
        ctx.n_inputs = len(ts)
        ctx.save_for_backward(scale, gscale, *ts, *grads)
        return values

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, gvalues: Tensor):  # type: ignore[override]
        saved = ctx.saved_tensors
        n = ctx.n_inputs
        scale, gscale, ts, grads = saved[0], saved[1], saved[2 : 2 + n], saved[2 + n :]
        if bool((gvalues == gvalues[0]).all()):
            g = gvalues[0]
        else:  # components weighted unequally downstream: recompute with those weights
            g = gvalues.new_ones(())
            enabled, dtype = ctx.autocast
            with torch.enable_grad(), torch.autocast(scale.device.type, dtype, enabled=enabled):
                _, gscale, grads = _run_plan(ctx.plan, scale, ts, gvalues, need_grad=True)
        out: list[Tensor | None] = [None]
        out.append(None if gscale is None else (gscale * g).to(scale.dtype).reshape(scale.shape))
        for t, gt in zip(ts, grads):
            out.append(None if gt is None else (gt * g).to(t.dtype))
        return tuple(out)


def run_plan(plan: _Plan, scale: Tensor, ts: Sequence[Tensor]) -> dict[str, Tensor]:
    """Evaluate ``plan`` as a differentiable dict ``{component: 0-d tensor}``."""
    scale = _as_scale(scale, ts)
    needs = torch.is_grad_enabled() and (
        scale.requires_grad or any(t.requires_grad for t in ts if t.dtype.is_floating_point)
    )
    if needs:
        values = _FusedLoss.apply(plan, scale, *ts)
    else:
        values = _run_plan(plan, scale, ts, None, need_grad=False)[0]
    return {name: values[i] for i, name in enumerate(plan.components)}


def _as_scale(scale: Tensor | float, ts: Sequence[Tensor]) -> Tensor:
    if not isinstance(scale, Tensor):
        scale = torch.tensor(float(scale), device=ts[0].device)
    if scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar tensor, got shape {tuple(scale.shape)}")
    return scale.reshape(())


# ---------------------------------------------------------------------------------------
# Kernels
# ---------------------------------------------------------------------------------------
#
# Each kernel has an eager implementation (in place on its own C x N buffers; used on CPU
# and as the fallback) and, for the common cases, a pure functional one that
# ``torch.compile`` fuses into a few row-reduction / pointwise GPU kernels (every C x N
# value is recomputed on the fly from x and y instead of being written to memory).
# Both compute the same closed-form values and gradients.

_KERNEL_MODES = ("auto", "eager", "fused", "compile")
_kernel_mode = os.environ.get("ALIGNCLIP_LOSS_KERNELS", "auto")


def set_kernel_mode(mode: str) -> str:
    """Select the kernel implementation; returns the previous mode.

    ``auto`` (default): compiled fused kernels on CUDA when Triton is available, else
    eager. ``eager``: in-place eager kernels. ``fused``: the fused kernels without
    compilation (slow; for testing their math). ``compile``: always compile (also CPU).
    Also settable with the environment variable ``ALIGNCLIP_LOSS_KERNELS``.
    """
    global _kernel_mode
    if mode not in _KERNEL_MODES:
        raise ValueError(f"kernel mode must be one of {_KERNEL_MODES}, got {mode!r}")
    previous, _kernel_mode = _kernel_mode, mode
    return previous


@functools.cache
def _triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return True


def _resolve_mode(device: torch.device) -> str:
    if _kernel_mode == "auto":
        return "compile" if device.type == "cuda" and _triton_available() else "eager"
    return _kernel_mode


class _Kernel:
    """A row-block loss kernel: ``kernel(x, y, diag, w, need_grad) -> (vals, dx, dy)``."""

    has_fused = False

    def eager(self, x, y, diag, w, need_grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def fused(self, x, y, diag, w):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x, y, diag, w, need_grad: bool):
        mode = _resolve_mode(x.device)
        if need_grad and self.has_fused and mode in ("fused", "compile"):
            if mode == "fused":
                vals, dx = self.fused(x, y, diag, w)
                return vals, dx, None
            compiled = self.__dict__.get("_compiled")
            if compiled is None:
                compiled = torch.compile(self.fused, dynamic=True)
                self._compiled = compiled
            if not self.__dict__.get("_compile_failed"):
                try:
                    vals, dx = compiled(x, y, diag, w)
                    return vals, dx, None
                except Exception as exc:  # compiler missing or broken: stay correct, warn once
                    self._compile_failed = True
                    warnings.warn(
                        f"torch.compile of loss kernel {type(self).__name__} failed ({exc!r}); "
                        "using the eager kernel",
                        RuntimeWarning,
                        stacklevel=2,
                    )
        return self.eager(x, y, diag, w, need_grad)


@functools.lru_cache(maxsize=256)
def _kernel(cls: type, *args) -> _Kernel:
    """One shared kernel instance per (class, options): compiled code is reused."""
    return cls(*args)


def _arange_like(diag: Tensor) -> Tensor:
    return torch.arange(diag.shape[0], device=diag.device)


def _diag_mask(x: Tensor, diag: Tensor) -> Tensor:
    return torch.arange(x.shape[1], device=x.device)[None, :] == diag[:, None]


def _gather_diag(x: Tensor, diag: Tensor) -> Tensor:
    return x.gather(1, diag[:, None]).squeeze(1)


class HardKernel(_Kernel):
    """Cross-entropy with the one-hot target (CLIP), times ``weight``. One component."""

    has_fused = True

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def eager(self, x, y, diag, w, need_grad):
        r = _arange_like(diag)
        lse = torch.logsumexp(x, 1)
        val = self.weight * (lse - x[r, diag]).sum()
        dx = None
        if need_grad:
            dx = x.sub_(lse[:, None]).exp_()
            dx[r, diag] -= 1
            dx.mul_(w[0] * self.weight)
        return val.reshape(1), dx, None

    def fused(self, x, y, diag, w):
        lse = torch.logsumexp(x, 1)
        val = self.weight * (lse - _gather_diag(x, diag)).sum()
        dx = (torch.exp(x - lse[:, None]) - _diag_mask(x, diag).to(x.dtype)) * (w[0] * self.weight)
        return val.reshape(1), dx


class ValidHardKernel(_Kernel):
    """:class:`HardKernel` over valid rows and columns only (SoftCLIP's ROI-tag term when
    some samples have no ROIs). ``y = (valid rows (C,), valid columns (N,), factor)``:
    invalid columns leave the softmax, invalid rows add nothing, and ``factor`` (global
    rows / global valid rows) turns the plan's mean over all rows into a mean over the
    valid ones. With every sample valid it equals :class:`HardKernel`.
    """

    has_fused = True

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def eager(self, x, y, diag, w, need_grad):
        rows, cols, factor = y
        x.masked_fill_(~cols[None, :], -math.inf)
        x.masked_fill_(~rows[:, None], 0.0)  # any finite row: its value is dropped below
        r = _arange_like(diag)
        lse = torch.logsumexp(x, 1)
        val = self.weight * factor * ((lse - x[r, diag]) * rows).sum()
        dx = None
        if need_grad:
            dx = x.sub_(lse[:, None]).exp_()
            dx[r, diag] -= 1
            dx.mul_(rows[:, None].to(dx.dtype) * (w[0] * self.weight * factor))
        return val.reshape(1), dx, None

    def fused(self, x, y, diag, w):
        rows, cols, factor = y
        x = torch.where(rows[:, None], x.masked_fill(~cols[None, :], -math.inf), 0.0)
        lse = torch.logsumexp(x, 1)
        val = self.weight * factor * ((lse - _gather_diag(x, diag)) * rows).sum()
        dx = torch.exp(x - lse[:, None]) - _diag_mask(x, diag).to(x.dtype)
        return val.reshape(1), dx * (rows[:, None] * (w[0] * self.weight * factor))


class SmoothKernel(_Kernel):
    """Cross-entropy with ``(1-α) e_i + α/(N-1) (1-e_i)`` (METHODS §2). One component."""

    has_fused = True

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def _on_off(self, n):
        if n > 1:
            return 1.0 - self.alpha, self.alpha / (n - 1)
        return 1.0, 0.0

    def eager(self, x, y, diag, w, need_grad):
        on, off = self._on_off(x.shape[1])
        r = _arange_like(diag)
        lse = torch.logsumexp(x, 1)
        xd = x[r, diag]
        val = (lse - on * xd - off * (x.sum(1) - xd)).sum()
        dx = None
        if need_grad:
            dx = x.sub_(lse[:, None]).exp_()
            if off:
                dx.sub_(off)
            dx[r, diag] -= on - off
            dx.mul_(w[0])
        return val.reshape(1), dx, None

    def fused(self, x, y, diag, w):
        on, off = self._on_off(x.shape[1])
        lse = torch.logsumexp(x, 1)
        xd = _gather_diag(x, diag)
        val = (lse - on * xd - off * (x.sum(1) - xd)).sum()
        target = _diag_mask(x, diag).to(x.dtype) * (on - off) + off
        dx = (torch.exp(x - lse[:, None]) - target) * w[0]
        return val.reshape(1), dx


def _iou(inter: Tensor, a_sizes: Tensor, b_sizes: Tensor, dtype: torch.dtype) -> Tensor:
    union = (a_sizes[:, None] + b_sizes[None, :]).to(dtype) - inter.to(dtype)
    return inter.to(dtype) / union.clamp_min(1)  # 0 when both sets are empty


class IouKernel(_Kernel):
    """Cross-entropy with the Object-IoU target (METHODS §4).

    ``y = (row sets (C, M), their sizes (C,), column sets (N, M'), their sizes (N,))``,
    canonical (sorted, unique, -1 padded). The eager kernel counts intersections with an
    inverted index (:func:`_intersections`); the fused one compares ids on the fly, so
    neither the counts nor the IoU block is ever written to memory.
    """

    has_fused = True

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def eager(self, x, y, diag, w, need_grad):
        beta = self.beta
        a, sa, b, sb = y
        s = _iou(_intersections(a, b), sa, sb, x.dtype)
        r = _arange_like(diag)
        s[r, diag] = 1.0  # S_ii = 1
        s.div_(s.sum(1, keepdim=True))  # row-normalised similarity
        lse = torch.logsumexp(x, 1)
        xd = x[r, diag]
        wx = torch.einsum("ij,ij->i", s, x)
        val = (lse - (1.0 - beta) * xd - beta * wx).sum()
        dx = None
        if need_grad:
            dx = x.sub_(lse[:, None]).exp_()
            dx.sub_(s, alpha=beta)
            dx[r, diag] -= 1.0 - beta
            dx.mul_(w[0])
        return val.reshape(1), dx, None

    def fused(self, x, y, diag, w):
        beta = self.beta
        a, sa, b, sb = y
        b = torch.where(b >= 0, b, -2)  # padding never matches padding
        inter = torch.zeros_like(x)
        for m in range(a.shape[1]):
            for m2 in range(b.shape[1]):
                inter = inter + (a[:, m, None] == b[None, :, m2]).to(x.dtype)
        isd = _diag_mask(x, diag)
        s = torch.where(isd, 1.0, _iou(inter, sa, sb, x.dtype))
        rs = s.sum(1)
        lse = torch.logsumexp(x, 1)
        xd = _gather_diag(x, diag)
        wx = (s * x).sum(1) / rs
        val = (lse - (1.0 - beta) * xd - beta * wx).sum()
        dx = torch.exp(x - lse[:, None]) - beta * s / rs[:, None] - (1.0 - beta) * isd.to(x.dtype)
        return val.reshape(1), dx * w[0]


@dataclass(frozen=True)
class SoftConfig:
    """Options of the SoftCLIP soft/relation/CLIP terms on one (logits, target) pair."""

    beta: float = 0.3
    lam: float = 1.0
    mu: float = 1.0
    relation: bool = True
    symmetric: bool = True
    divergence: str = "kl"
    target_grad: bool = False
    soft_weight: float = 1.0  # weight of the soft term (γ in the guidance mix)

    def components(self) -> tuple[str, ...]:
        out = ["soft"]
        if self.relation and self.lam != 0:
            out.append("relation")
        if self.mu != 0:
            out.append("clip")
        return tuple(out)

    def validate(self) -> None:
        if not 0.0 <= self.beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {self.beta}")
        if self.divergence not in DIVERGENCES:
            raise ValueError(f"divergence must be one of {DIVERGENCES}, got {self.divergence!r}")
        if self.beta == 0 and self.divergence == "kl" and self.symmetric:
            raise ValueError(
                "the symmetric KL to a one-hot target (beta = 0) is infinite: KL(p || e_i) "
                "has log 0 terms; use beta > 0 or symmetric=False"
            )


def soft_kernel(cfg: SoftConfig) -> Kernel:
    """SoftCLIP soft (+ relation-enhanced, + CLIP) terms for one direction.

    ``y`` holds the target logits ``s' * a @ b.T``. Components in the order of
    :meth:`SoftConfig.components`, each already multiplied by its weight.
    Closed-form gradients for KL / symmetric KL without target gradients; otherwise
    local autograd on a log-space formulation of the same terms.
    """
    cfg.validate()
    if cfg.divergence == "kl" and not cfg.target_grad:
        return _kernel(SoftClosedKernel, cfg)
    return _kernel(SoftAutogradKernel, cfg)


class SoftClosedKernel(_Kernel):
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

    def __init__(self, cfg: SoftConfig) -> None:
        self.cfg = cfg
        self.use_rel = cfg.relation and cfg.lam != 0
        self.use_clip = cfg.mu != 0
        self.k = 1 + int(self.use_rel) + int(self.use_clip)

    def _scalars(self, xd, yd, lr, mr, u1, u2, w, hard=None):
        """Values (k,) and the gradient's row coefficients from the row statistics.

        ``hard`` (C,) bool marks rows that take the hard label instead of the soft target
        (samples without ROIs): their soft term is the cross-entropy ``-log p_ii`` and their
        relation term is 0.
        """
        cfg = self.cfg
        beta, lam, mu, sym = cfg.beta, cfg.lam, cfg.mu, cfg.symmetric
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
        vals = [cfg.soft_weight * soft.sum()]
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
        ws = w[0] * cfg.soft_weight
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
        r = _arange_like(diag)
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
        isd = _diag_mask(x, diag)
        xd, yd = _gather_diag(x, diag), _gather_diag(y, diag)
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


def _masked_div(lt: Tensor, lp: Tensor, valid: Tensor, cfg: SoftConfig) -> Tensor:
    """Row sums of D(t, p) over ``valid`` entries from log-probabilities (NaN-safe)."""
    t = torch.where(valid, lt.exp(), 0.0)
    p = torch.where(valid, lp.exp(), 0.0)
    lt_v = torch.where(valid & (lt > -math.inf), lt, 0.0)
    lp_v = torch.where(valid, lp, 0.0)
    if cfg.divergence == "js":
        lm = torch.logaddexp(torch.where(valid, lt, 0.0), lp_v) - math.log(2.0)
        return 0.5 * (t * (lt_v - lm)).sum(1) + 0.5 * (p * (lp_v - lm)).sum(1)
    forward = (t * (lt_v - lp_v)).sum(1)
    if not cfg.symmetric:
        return forward
    return 0.5 * (forward + (p * (lp_v - lt_v)).sum(1))


def soft_terms_autograd(
    x: Tensor, y: Tensor, diag: Tensor, cfg: SoftConfig, hard: Tensor | None = None
) -> Tensor:
    """The (weighted) components of :func:`soft_kernel` as a differentiable (k,) tensor.

    ``hard`` (C,) bool: rows taking the hard label (soft term ``-log p_ii``, no relation).
    """
    if hard is not None:
        keep = ~hard
        vals = soft_terms_autograd(x[keep], y[keep], diag[keep], cfg)
        ce = -torch.log_softmax(x[hard], 1).gather(1, diag[hard][:, None]).sum()
        extra = [cfg.soft_weight * ce]
        if cfg.relation and cfg.lam != 0:
            extra.append(ce * 0.0)
        if cfg.mu != 0:
            extra.append(cfg.mu * ce)
        return vals + torch.stack(extra)
    mask = _diag_mask(x, diag)
    lq = torch.log_softmax(y, 1)
    if cfg.beta == 0:
        lt = torch.where(mask, 0.0, -math.inf).to(x.dtype)
    elif cfg.beta == 1:
        lt = lq
    else:
        lt = torch.where(
            mask,
            torch.logaddexp(torch.full_like(lq, math.log1p(-cfg.beta)), math.log(cfg.beta) + lq),
            math.log(cfg.beta) + lq,
        )
    # the disentangled target does not depend on β: softmax of y off the diagonal
    lqs = torch.log_softmax(y.masked_fill(mask, -math.inf), 1) if x.shape[1] > 1 else None
    return soft_terms_from_log_targets(x, lt, lqs, mask, cfg)


def soft_terms_from_log_targets(
    x: Tensor, lt: Tensor, lqs: Tensor | None, mask: Tensor, cfg: SoftConfig
) -> Tensor:
    """SoftCLIP's (weighted) components for explicit log targets, differentiable in ``x``.

    ``x`` (C, N) logits; ``lt`` (C, N) log of the softened target rows; ``lqs`` (C, N) log
    of the disentangled target rows (eq. 12; ignored on the diagonal); ``mask`` (C, N)
    true at each row's positive. A row whose disentangled target has no mass (all
    ``-inf`` off the diagonal) adds nothing to the relation term.
    """
    n = x.shape[1]
    every = torch.ones_like(mask)
    lp = torch.log_softmax(x, 1)
    vals = [cfg.soft_weight * _masked_div(lt, lp, every, cfg).sum()]
    if cfg.relation and cfg.lam != 0:
        if n < 2 or lqs is None:
            vals.append(x.sum() * 0.0)
        else:
            lps = torch.log_softmax(x.masked_fill(mask, -math.inf), 1)
            has_mass = torch.isfinite(lqs.masked_fill(mask, -math.inf)).any(1, keepdim=True)
            valid = ~mask & has_mass
            lqs = torch.where(has_mass, lqs, 0.0)
            vals.append(cfg.lam * _masked_div(lqs, lps, valid, cfg).sum())
    if cfg.mu != 0:
        vals.append(cfg.mu * -(lp[mask]).sum())
    return torch.stack(vals)


class SoftAutogradKernel(_Kernel):
    """SoftCLIP terms for JS or target gradients: local autograd on the row block."""

    def __init__(self, cfg: SoftConfig) -> None:
        self.cfg = cfg

    def eager(self, x, y, diag, w, need_grad):
        cfg = self.cfg
        y, hard = y if isinstance(y, tuple) else (y, None)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(need_grad)
            yg = y.detach().requires_grad_(need_grad and cfg.target_grad)
            vals = soft_terms_autograd(xg, yg, diag, cfg, hard)
            if not need_grad:
                return vals.detach(), None, None
            inputs = [xg, yg] if cfg.target_grad else [xg]
            grads = torch.autograd.grad((vals * w).sum(), inputs, allow_unused=True)
        dx = grads[0] if grads[0] is not None else torch.zeros_like(x)
        dy = grads[1] if cfg.target_grad else None
        return vals.detach(), dx, dy


# ---------------------------------------------------------------------------------------
# Plans for each loss (rows may be local rows, cols global columns)
# ---------------------------------------------------------------------------------------


def _form(form: str, roi: int, tag: int) -> tuple[int, int]:
    """Tensor indices (target rows, target cols) of a supervision form."""
    if form not in SUPERVISION_FORMS:
        raise ValueError(f"supervision form must be one of {SUPERVISION_FORMS}, got {form!r}")
    src = {"R": roi, "A": tag}
    return src[form[0]], src[form[2]]


def clip_plan(layout: Layout, *, weight: float = 1.0, name: str = "clip", **chunk) -> _Plan:
    """Hard CLIP (METHODS §1) on ``layout``'s image/text tensors."""
    kern = _kernel(HardKernel, float(weight))
    dirs = (
        _Direction(layout.img_rows, layout.txt_cols, layout.offset, (_Term(kern, (0,)),)),
        _Direction(layout.txt_rows, layout.img_cols, layout.offset, (_Term(kern, (0,)),)),
    )
    return _Plan((name,), dirs, **chunk)


@dataclass(frozen=True)
class Layout:
    """Where the row and column tensors of each modality sit in the plan's input list.

    ``*_rows`` index the rows this process computes (all of them, or its local ones
    under ``local_loss``) and ``*_cols`` the global columns; ``offset`` is the global index
    of the first row. -1 marks an absent tensor.
    """

    img_rows: int = 0
    txt_rows: int = 1
    img_cols: int = 0
    txt_cols: int = 1
    offset: int = 0
    roi_rows: int = -1
    tag_rows: int = -1
    roi_cols: int = -1
    tag_cols: int = -1
    iobj_rows: int = -1
    tobj_rows: int = -1
    iobj_cols: int = -1
    tobj_cols: int = -1
    # (n, 1) float flags, 1 for samples with ROIs: the others take hard labels (SoftCLIP)
    valid_rows: int = -1
    valid_cols: int = -1


def label_smoothing_plan(layout: Layout, *, alpha: float = 0.2, **chunk) -> _Plan:
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    kern = _kernel(SmoothKernel, float(alpha))
    dirs = (
        _Direction(layout.img_rows, layout.txt_cols, layout.offset, (_Term(kern, (0,)),)),
        _Direction(layout.txt_rows, layout.img_cols, layout.offset, (_Term(kern, (0,)),)),
    )
    return _Plan(("label_smoothing",), dirs, **chunk)


def _feature_target(form: str, layout: Layout) -> tuple:
    """("feat", target-row tensor, target-col tensor) for a v2l/l2v supervision form,
    plus the valid-row flags for ROI/tag forms when the layout has them."""
    if form in ("I2I", "T2T"):  # guidance mix, image / text self-similarity
        rows = layout.img_rows if form == "I2I" else layout.txt_rows
        cols = layout.img_cols if form == "I2I" else layout.txt_cols
        return ("feat", rows, cols)
    r, a = _form(form, 0, 1)
    rows = (layout.roi_rows, layout.tag_rows)[r]
    cols = (layout.roi_cols, layout.tag_cols)[a]
    if layout.valid_rows >= 0:
        return ("feat", rows, cols, layout.valid_rows)
    return ("feat", rows, cols)


def softclip_plan(
    layout: Layout,
    *,
    beta: float = 0.3,
    lam: float = 1.0,
    mu: float = 1.0,
    relation_enhanced: bool = True,
    symmetric: bool = True,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
    divergence: str = "kl",
    target_grad: bool = False,
    roi_tag_weight: float = 0.0,
    **chunk,
) -> _Plan:
    """SoftCLIP eq. 16 (+ optional ROI-tag CLIP term, METHODS §3)."""
    cfg = SoftConfig(beta, lam, mu, relation_enhanced, symmetric, divergence, target_grad)
    kern = soft_kernel(cfg)
    comps = cfg.components()
    idx = tuple(range(len(comps)))
    dirs = [
        _Direction(
            layout.img_rows,
            layout.txt_cols,
            layout.offset,
            (_Term(kern, idx, _feature_target(v2l_target, layout), target_grad),),
        ),
        _Direction(
            layout.txt_rows,
            layout.img_cols,
            layout.offset,
            (_Term(kern, idx, _feature_target(l2v_target, layout), target_grad),),
        ),
    ]
    if roi_tag_weight:
        k = len(comps)
        comps = comps + ("roi_tag",)
        if layout.valid_rows >= 0:  # samples without ROIs leave the ROI-tag term
            rt = _kernel(ValidHardKernel, float(roi_tag_weight))
            term = _Term(rt, (k,), ("valid", layout.valid_rows, layout.valid_cols))
        else:
            term = _Term(_kernel(HardKernel, float(roi_tag_weight)), (k,))
        dirs.append(_Direction(layout.roi_rows, layout.tag_cols, layout.offset, (term,)))
        dirs.append(_Direction(layout.tag_rows, layout.roi_cols, layout.offset, (term,)))
    return _Plan(comps, tuple(dirs), **chunk)


def guidance_mix_plan(
    layout: Layout,
    *,
    gamma: float,
    beta: float = 0.3,
    lam: float = 1.0,
    relation_enhanced: bool = True,
    symmetric: bool = True,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
    divergence: str = "kl",
    target_grad: bool = False,
    **chunk,
) -> _Plan:
    """Fig. 4a: ``γ L(R,A) + (1-γ) L(I,T)``, ``L = L̃_soft + λ L̃_re``, no CLIP term."""
    if not 0.0 <= gamma <= 1.0:
        raise ValueError(f"gamma must be in [0, 1], got {gamma}")
    comps: list[str] = []
    v2l_terms: list[_Term] = []
    l2v_terms: list[_Term] = []
    for suffix, weight, forms in (
        ("ra", gamma, (v2l_target, l2v_target)),
        ("it", 1.0 - gamma, ("I2I", "T2T")),
    ):
        if weight == 0:
            continue
        cfg = SoftConfig(
            beta, lam * weight, 0.0, relation_enhanced, symmetric, divergence, target_grad, weight
        )
        kern = soft_kernel(cfg)
        names = [f"{c}_{suffix}" for c in cfg.components()]
        idx = tuple(range(len(comps), len(comps) + len(names)))
        comps += names
        v2l_terms.append(_Term(kern, idx, _feature_target(forms[0], layout), target_grad))
        l2v_terms.append(_Term(kern, idx, _feature_target(forms[1], layout), target_grad))
    dirs = (
        _Direction(layout.img_rows, layout.txt_cols, layout.offset, tuple(v2l_terms)),
        _Direction(layout.txt_rows, layout.img_cols, layout.offset, tuple(l2v_terms)),
    )
    return _Plan(tuple(comps), dirs, **chunk)


def object_iou_plan(layout: Layout, *, beta: float, **chunk) -> _Plan:
    if not 0.0 <= beta <= 1.0:
        raise ValueError(f"beta must be in [0, 1], got {beta}")
    if beta == 0:  # exactly the CLIP loss; the object sets are not needed
        plan = clip_plan(layout, name="object_iou", **chunk)
        return plan
    kern = _kernel(IouKernel, float(beta))
    dirs = (
        _Direction(
            layout.img_rows,
            layout.txt_cols,
            layout.offset,
            (_Term(kern, (0,), ("iou", layout.iobj_rows, layout.tobj_cols)),),
        ),
        _Direction(
            layout.txt_rows,
            layout.img_cols,
            layout.offset,
            (_Term(kern, (0,), ("iou", layout.tobj_rows, layout.iobj_cols)),),
        ),
    )
    return _Plan(("object_iou",), dirs, **chunk)


def _chunk_kw(chunk_rows: int | None) -> dict:
    return {} if chunk_rows is None else {"chunk_rows": int(chunk_rows)}


def _check_features(*feats: Tensor) -> None:
    n = feats[0].shape[0]
    for f in feats:
        if f.dim() != 2:
            raise ValueError(f"features must be (N, D), got shape {tuple(f.shape)}")
        if f.shape[0] != n:
            raise ValueError(
                f"all features need the same batch size N, got {[g.shape[0] for g in feats]}"
            )


# ---------------------------------------------------------------------------------------
# Public functional API (single process: the given tensors are the whole batch)
# ---------------------------------------------------------------------------------------

_SINGLE = Layout(roi_rows=2, tag_rows=3, roi_cols=2, tag_cols=3)
_SINGLE_VALID = Layout(roi_rows=2, tag_rows=3, roi_cols=2, tag_cols=3, valid_rows=4, valid_cols=4)


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


def clip_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor,
    *,
    chunk_rows: int | None = None,
) -> Tensor:
    """Hard CLIP loss (METHODS §1), row-blocked; equals upstream ``ClipLoss``. 0-d."""
    _check_features(image_features, text_features)
    plan = clip_plan(Layout(), **_chunk_kw(chunk_rows))
    return run_plan(plan, logit_scale, [image_features, text_features])["clip"]


def label_smoothing_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor,
    *,
    alpha: float = 0.2,
    chunk_rows: int | None = None,
) -> Tensor:
    """PyramidCLIP label smoothing (METHODS §2, SoftCLIP eq. 5). Features (N, D); 0-d loss.

    Targets ``(1-α) e_i + α/(N-1) (1-e_i)`` in both directions; N = 1 has no negatives
    and gives the plain CLIP loss.
    """
    _check_features(image_features, text_features)
    plan = label_smoothing_plan(Layout(), alpha=alpha, **_chunk_kw(chunk_rows))
    return run_plan(plan, logit_scale, [image_features, text_features])["label_smoothing"]


def softclip_loss(
    image_features: Tensor,
    text_features: Tensor,
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    *,
    beta: float = 0.3,
    lam: float = 1.0,
    mu: float = 1.0,
    relation_enhanced: bool = True,
    symmetric: bool = True,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
    divergence: str = "kl",
    target_grad: bool = False,
    roi_tag_weight: float = 0.0,
    chunk_rows: int | None = None,
    roi_valid: Tensor | None = None,
) -> dict[str, Tensor]:
    """SoftCLIP (METHODS §3, eq. 16): ``{"soft", "relation", "clip"[, "roi_tag"]}``.

    All features (N, D) (roi/tag: the ROI and tag embeddings r_i, a_i). Returns the
    weighted components whose sum is the loss: ``soft`` = L̃_soft (or L_soft with
    ``symmetric=False``; JS with ``divergence="js"``), ``relation`` = λ L̃_re (absent when
    ``relation_enhanced`` is off or λ = 0), ``clip`` = μ L_CLIP (absent when μ = 0),
    ``roi_tag`` = w_rt · CLIP(r, a) (only when ``roi_tag_weight`` > 0). Targets use
    ``s' = logit_scale`` as a constant; they carry gradient only with ``target_grad``.
    The disentangled target does not depend on β (β q_ij / Σ_{k≠i} β q_ik), so at β = 0
    the relation term is its β → 0 limit. ``roi_valid`` (N,) bool marks the samples that
    have ROIs; the others take hard labels (see :func:`mask_rois`).
    """
    _check_features(image_features, text_features, roi_features, tag_features)
    ts = [image_features, text_features, roi_features, tag_features]
    if roi_valid is not None:
        ts[2:] = mask_rois(roi_features, tag_features, roi_valid)
    plan = softclip_plan(
        _SINGLE if roi_valid is None else _SINGLE_VALID,
        beta=beta,
        lam=lam,
        mu=mu,
        relation_enhanced=relation_enhanced,
        symmetric=symmetric,
        v2l_target=v2l_target,
        l2v_target=l2v_target,
        divergence=divergence,
        target_grad=target_grad,
        roi_tag_weight=roi_tag_weight,
        **_chunk_kw(chunk_rows),
    )
    return run_plan(plan, logit_scale, ts)


def guidance_mix_loss(
    image_features: Tensor,
    text_features: Tensor,
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    *,
    gamma: float,
    beta: float = 0.3,
    lam: float = 1.0,
    relation_enhanced: bool = True,
    symmetric: bool = True,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
    divergence: str = "kl",
    target_grad: bool = False,
    chunk_rows: int | None = None,
    roi_valid: Tensor | None = None,
) -> dict[str, Tensor]:
    """SoftCLIP Fig. 4a: ``γ L(R,A) + (1-γ) L(I,T)`` with ``L = L̃_soft + λ L̃_re``, no CLIP.

    ``L(I,T)`` takes its v2l target from the image self-similarity ``softmax(s' V Vᵀ)``
    and its l2v target from ``softmax(s' T Tᵀ)``. Returns the weighted components
    ``soft_ra``, ``relation_ra`` (γ-weighted) and ``soft_it``, ``relation_it``
    ((1-γ)-weighted); zero-weight parts are omitted. ``roi_valid``: as in
    :func:`softclip_loss` (rows without ROIs take the hard label in the ROI/tag part).
    """
    _check_features(image_features, text_features, roi_features, tag_features)
    ts = [image_features, text_features, roi_features, tag_features]
    if roi_valid is not None:
        ts[2:] = mask_rois(roi_features, tag_features, roi_valid)
    plan = guidance_mix_plan(
        _SINGLE if roi_valid is None else _SINGLE_VALID,
        gamma=gamma,
        beta=beta,
        lam=lam,
        relation_enhanced=relation_enhanced,
        symmetric=symmetric,
        v2l_target=v2l_target,
        l2v_target=l2v_target,
        divergence=divergence,
        target_grad=target_grad,
        **_chunk_kw(chunk_rows),
    )
    return run_plan(plan, logit_scale, ts)


def object_iou_matrix(image_objects: Tensor, text_objects: Tensor) -> Tensor:
    """IoU of object-id sets: ``(N, M)`` and ``(N', M')`` int ids padded with -1 → (N, N') float.

    Ids are treated as sets (duplicates in a row count once; negative ids are padding);
    the IoU of two empty sets is 0.
    """
    a, sa = _canonical_sets(image_objects)
    b, sb = _canonical_sets(text_objects.to(a.device))
    return _iou(_intersections(a, b), sa, sb, torch.float32)


def object_iou_loss(
    image_features: Tensor,
    text_features: Tensor,
    logit_scale: Tensor,
    image_objects: Tensor,
    text_objects: Tensor,
    *,
    beta: float,
    chunk_rows: int | None = None,
) -> Tensor:
    """AlignCLIP Object-IoU loss (METHODS §4). Features (N, D), object ids (N, M) / (N, M').

    Targets ``(1-β) e_i + β S_i / Σ_j S_ij`` (image→text) and the column-normalised
    counterpart (text→image), with ``S = IoU`` off the diagonal and ``S_ii = 1``.
    β = 0 is exactly the CLIP loss.
    """
    _check_features(image_features, text_features)
    if (
        image_objects.shape[0] != image_features.shape[0]
        or text_objects.shape[0] != image_features.shape[0]
    ):
        raise ValueError("image_objects and text_objects need one row per sample")
    layout = Layout(iobj_rows=2, tobj_rows=3, iobj_cols=2, tobj_cols=3)
    plan = object_iou_plan(layout, beta=beta, **_chunk_kw(chunk_rows))
    ts = [image_features, text_features, image_objects, text_objects]
    return run_plan(plan, logit_scale, ts)["object_iou"]


def neg_disentangle(p: Tensor) -> Tensor:
    """SoftCLIP eq. 12: (N, N) row distributions → (N, N-1), diagonal dropped, rows renormalised."""
    if p.dim() != 2 or p.shape[0] != p.shape[1]:
        raise ValueError(f"expected a square (N, N) matrix, got {tuple(p.shape)}")
    n = p.shape[0]
    off = ~torch.eye(n, dtype=torch.bool, device=p.device)
    q = p[off].reshape(n, n - 1)
    return q / q.sum(1, keepdim=True)


# ---------------------------------------------------------------------------------------
# Explicit targets (N x N; for inspection, tests and the plugin-author kit, not training)
# ---------------------------------------------------------------------------------------


def label_smoothing_targets(
    n: int, alpha: float = 0.2, *, dtype=torch.float32
) -> tuple[Tensor, Tensor]:
    """(v2l, l2v) targets of :func:`label_smoothing_loss`, each (N, N)."""
    eye = torch.eye(n, dtype=dtype)
    y = eye if n == 1 else (1 - alpha) * eye + alpha / (n - 1) * (1 - eye)
    return y, y.clone()


def softclip_targets(
    roi_features: Tensor,
    tag_features: Tensor,
    logit_scale: Tensor,
    *,
    beta: float = 0.3,
    v2l_target: str = "R2R",
    l2v_target: str = "A2A",
) -> tuple[Tensor, Tensor]:
    """Softened targets ``(1-β) I + β softmax(s' X Yᵀ)`` of both directions (eq. 8-9), (N, N)."""
    feats = {"R": roi_features.detach(), "A": tag_features.detach()}
    s = _as_scale(logit_scale, [roi_features]).detach()
    out = []
    for form in (v2l_target, l2v_target):
        _form(form, 0, 1)
        a, b = feats[form[0]], feats[form[2]]
        q = torch.softmax(s.to(a.dtype) * a @ b.T, dim=1)
        eye = torch.eye(q.shape[0], dtype=q.dtype, device=q.device)
        out.append((1 - beta) * eye + beta * q)
    return out[0], out[1]


def object_iou_targets(
    image_objects: Tensor, text_objects: Tensor, *, beta: float
) -> tuple[Tensor, Tensor]:
    """Object-IoU targets (METHODS §4): image→text rows ``y_i`` and text→image rows ``y'_j``."""
    s = object_iou_matrix(image_objects, text_objects)
    n = s.shape[0]
    eye = torch.eye(n, dtype=s.dtype, device=s.device)
    s = s * (1 - eye) + eye
    v2l = (1 - beta) * eye + beta * s / s.sum(1, keepdim=True)
    l2v = (1 - beta) * eye + beta * (s / s.sum(0, keepdim=True)).T
    return v2l, l2v
