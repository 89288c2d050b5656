"""Row-block kernels with hand-derived gradients (private): hard, label-smoothed, Object-IoU
and explicit-target cross-entropies. SoftCLIP's kernels are in :mod:`._soft_kernels`.

A kernel gets the logits ``x`` (C, N) of one row block and what its term's target gives
(``y``), and returns the block's loss values and ``dL/dx`` (see :mod:`._engine`). The
targets themselves are defined once, in :mod:`.functional` (``*_targets`` and the row
functions they are built on); the kernels compute the same numbers in place.

Each kernel has an eager implementation (in place on its own C x N buffers; used on CPU
and as the fallback) and, for the common cases, a pure functional one that
``torch.compile`` fuses into a few row-reduction / pointwise GPU kernels (every C x N
value is recomputed on the fly from x and y instead of being written to memory).
"""

from __future__ import annotations

import functools
import math
import warnings

import torch
from torch import Tensor

# functional defines the targets and builds its losses on this module: it is imported as
# a module and read at call time, so that either may be imported first.
from . import functional as F
from ._modes import resolve_mode
from ._sets import intersections, pairwise_intersections


class RowKernel:
    """A row-block loss kernel: ``kernel(x, y, diag, w, need_grad) -> (vals, dx, dy)``."""

    has_fused = False

    def eager(self, x, y, diag, w, need_grad):  # pragma: no cover - abstract
        raise NotImplementedError

    def fused(self, x, y, diag, w):  # pragma: no cover - abstract
        raise NotImplementedError

    def __call__(self, x, y, diag, w, need_grad: bool):
        mode = resolve_mode(x.device)
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
def kernel(cls: type, *args) -> RowKernel:
    """One shared kernel instance per (class, options): compiled code is reused."""
    return cls(*args)


def arange_like(diag: Tensor) -> Tensor:
    return torch.arange(diag.shape[0], device=diag.device)


def diag_mask(x: Tensor, diag: Tensor) -> Tensor:
    return torch.arange(x.shape[1], device=x.device)[None, :] == diag[:, None]


def gather_diag(x: Tensor, diag: Tensor) -> Tensor:
    return x.gather(1, diag[:, None]).squeeze(1)


def cross_entropy_eager(x: Tensor, y: Tensor, w: Tensor, need_grad: bool):
    """``Σ_rows H(y_i, softmax(x_i))`` and its gradient ``Σy_i p_i - y_i``, in place on x."""
    lse = torch.logsumexp(x, 1)
    ysum = y.sum(1)
    val = (lse * ysum).sum() - torch.einsum("ij,ij->", y, x)
    dx = None
    if need_grad:
        dx = x.sub_(lse[:, None]).exp_().mul_(ysum[:, None]).sub_(y).mul_(w[0])
    return val.reshape(1), dx


def cross_entropy_fused(x: Tensor, y: Tensor, w: Tensor):
    """:func:`cross_entropy_eager` without in-place updates (for ``torch.compile``)."""
    lse = torch.logsumexp(x, 1)
    ysum = y.sum(1)
    val = (lse * ysum).sum() - (y * x).sum()
    dx = (torch.exp(x - lse[:, None]) * ysum[:, None] - y) * w[0]
    return val.reshape(1), dx


class HardKernel(RowKernel):
    """Cross-entropy with the one-hot target (CLIP), times ``weight``. One component."""

    has_fused = True

    def __init__(self, weight: float = 1.0) -> None:
        self.weight = weight

    def eager(self, x, y, diag, w, need_grad):
        r = arange_like(diag)
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
        val = self.weight * (lse - gather_diag(x, diag)).sum()
        dx = (torch.exp(x - lse[:, None]) - diag_mask(x, diag).to(x.dtype)) * (w[0] * self.weight)
        return val.reshape(1), dx


class ValidHardKernel(RowKernel):
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
        r = arange_like(diag)
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
        val = self.weight * factor * ((lse - gather_diag(x, diag)) * rows).sum()
        dx = torch.exp(x - lse[:, None]) - diag_mask(x, diag).to(x.dtype)
        return val.reshape(1), dx * (rows[:, None] * (w[0] * self.weight * factor))


class SmoothKernel(RowKernel):
    """Cross-entropy with the label-smoothed target (:func:`.functional.label_smoothing_targets`),
    from its two values per row (positive, negatives); the target is never written."""

    has_fused = True

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def eager(self, x, y, diag, w, need_grad):
        on, off = F.label_smoothing_weights(x.shape[1], self.alpha)
        r = arange_like(diag)
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
        on, off = F.label_smoothing_weights(x.shape[1], self.alpha)
        lse = torch.logsumexp(x, 1)
        xd = gather_diag(x, diag)
        val = (lse - on * xd - off * (x.sum(1) - xd)).sum()
        target = diag_mask(x, diag).to(x.dtype) * (on - off) + off
        dx = (torch.exp(x - lse[:, None]) - target) * w[0]
        return val.reshape(1), dx


class IouKernel(RowKernel):
    """Cross-entropy with the Object-IoU target (:func:`.functional.object_iou_targets`).

    ``y = (row sets (C, M), their sizes (C,), column sets (N, M'), their sizes (N,))``,
    canonical (sorted, unique, -1 padded). The eager kernel counts intersections with an
    inverted index; the fused one compares ids on the fly, so that neither the counts nor
    the target block is ever written to memory. Both build the target with
    :func:`.functional.object_iou_from_counts` and :func:`.functional.object_iou_target_rows`.
    """

    has_fused = True

    def __init__(self, beta: float) -> None:
        self.beta = beta

    def _target(self, inter, sa, sb, x, diag):
        mask = diag_mask(x, diag)
        similarity = F.object_iou_from_counts(inter, sa, sb, mask, x.dtype)
        return F.object_iou_target_rows(similarity, mask, self.beta)

    def eager(self, x, y, diag, w, need_grad):
        a, sa, b, sb = y
        target = self._target(intersections(a, b), sa, sb, x, diag)
        vals, dx = cross_entropy_eager(x, target, w, need_grad)
        return vals, dx, None

    def fused(self, x, y, diag, w):
        a, sa, b, sb = y
        target = self._target(pairwise_intersections(a, b, x.dtype), sa, sb, x, diag)
        return cross_entropy_fused(x, target, w)


class TargetCrossEntropyKernel(RowKernel):
    """Cross-entropy with a plugin's target (:class:`.targets.Target`), ``y`` a RowBlock."""

    def __init__(self, target) -> None:
        self.target = target

    def eager(self, x, y, diag, w, need_grad):
        vals, dx = cross_entropy_eager(
            x, target_block_rows(self.target, "rows", y, x), w, need_grad
        )
        return vals, dx, None


def target_block_rows(target, method: str, block, x: Tensor) -> Tensor:
    """``target.rows(block)`` or ``target.log_rows(block)`` (``method``) as a block like ``x``."""
    rows = getattr(target, method)(block).to(x.dtype)
    if rows.shape != x.shape:
        raise ValueError(
            f"{type(target).__name__}.{method} gave shape {tuple(rows.shape)} for a "
            f"block of {tuple(x.shape)} (rows x columns)"
        )
    return rows
