"""The row-block engine (private): the plan format, row blocks, the autograd function.

A loss is a :class:`Plan`: named components (the loss terms) and directions (image rows
against text columns, text rows against image columns, ...), each a list of terms that
share the direction's logits. Nothing of size ``N x N`` is kept: each direction is
processed in row blocks of ``C x N``; a kernel (:mod:`._kernels`, :mod:`._soft_kernels`)
gives the block's loss values and their exact gradient with respect to the block's
logits, which is immediately contracted back to the ``(N, D)`` inputs. The backward pass
then only scales the stored input gradients (:class:`RowBlockLoss`; no recomputation, no
saved logits). The result is exact: the direct formulas' numbers up to rounding.

Tensors are passed as one list; a :class:`Layout` says where each named per-sample input
sits in it: the rows this process computes (all of them, or its own under upstream's
``local_loss``) and the global columns.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ._sets import canonical_sets

#: Default size of one row block, in elements of ``C x N`` (2**26 fp32 = 256 MiB).
DEFAULT_CHUNK_ELEMENTS = 1 << 26

# A kernel gets one row block and returns its per-component row sums and gradients:
#   kernel(x, y, diag, w, need_grad) -> (values (k,), dx (C, N) | None, dy (C, N) | None)
# x: logits s * rows @ cols.T (owned by the kernel; may be overwritten), y: what the
# term's target gives for the block (see target_block), diag: (C,) column index of each
# row's positive, w: (k,) weight of each component in the gradient (already divided by
# the number of rows).
Kernel = Callable[[Tensor, object, Tensor, Tensor, bool], tuple]


@dataclass(frozen=True)
class Layout:
    """Where each named per-sample tensor sits in the plan's input list.

    ``slots``: ``(name, rows index, cols index)``; ``offset``: the global index of the
    first row (row r's positive is column ``offset + r``).
    """

    slots: tuple[tuple[str, int, int], ...]
    offset: int = 0

    @classmethod
    def single(cls, names: Sequence[str]) -> Layout:
        """One process: tensor i is both the rows and the columns of ``names[i]``."""
        return cls(tuple((name, i, i) for i, name in enumerate(names)))

    def has(self, name: str) -> bool:
        return any(slot[0] == name for slot in self.slots)

    def _slot(self, name: str) -> tuple[str, int, int]:
        for slot in self.slots:
            if slot[0] == name:
                return slot
        raise KeyError(f"the loss input {name!r} is not in this layout")

    def rows(self, name: str) -> int:
        """Index of the tensor holding this process's rows of ``name``."""
        return self._slot(name)[1]

    def cols(self, name: str) -> int:
        """Index of the tensor holding all (global) columns of ``name``."""
        return self._slot(name)[2]


@dataclass(frozen=True)
class Term:
    """One loss term on the logits of a direction (several terms share the logits).

    ``target`` says what the kernel gets as ``y`` (:func:`target_block`):

    * ``None``: nothing (hard labels);
    * ``("feat", rows, cols[, valid rows])``: target logits ``s' rows @ cols.T``, with the
      rows whose valid flag is 0 marked for the hard label;
    * ``("valid", valid rows, valid cols)``: the valid flags (a hard term over valid
      samples only);
    * ``("iou", rows, cols)``: the canonical object-id sets of rows and columns;
    * ``("custom", ((name, rows, cols), ...))``: a :class:`RowBlock` of those inputs.
    """

    kernel: Kernel
    comps: tuple[int, ...]  # plan component index of each kernel output
    target: tuple | None = None
    target_grad: bool = False


@dataclass(frozen=True)
class Direction:
    """Rows ``ts[rows]`` against columns ``ts[cols]``; row r's positive is ``offset + r``."""

    rows: int
    cols: int
    offset: int
    terms: tuple[Term, ...]
    weight: float = 0.5  # ½ (v2l + l2v)
    name: str = ""


@dataclass(frozen=True)
class Plan:
    components: tuple[str, ...]
    directions: tuple[Direction, ...]
    chunk_rows: int | None = None
    chunk_elements: int = DEFAULT_CHUNK_ELEMENTS
    meta: dict = field(default_factory=dict, compare=False)

    def chunked(self, chunk_rows: int | None) -> Plan:
        """This plan with row blocks of ``chunk_rows`` rows (None: unchanged)."""
        return self if chunk_rows is None else dataclasses.replace(self, chunk_rows=chunk_rows)


class RowBlock:
    """One block of rows of one direction, as a target sees it.

    ``direction``: ``"v2l"`` (image rows, text columns) or ``"l2v"``; ``num_rows`` C and
    ``num_cols`` N; ``positives`` (C,): the column of each row's positive;
    ``positive_mask`` (C, N): true there;
    ``logit_scale``: s' (0-d); ``dtype``: the compute dtype. ``rows(name)`` (C, ...) and
    ``cols(name)`` (N, ...) give a per-sample input for these rows and for every column
    (gathered across ranks). Nothing read from a block carries gradient: targets are
    constants.
    """

    def __init__(
        self,
        direction: str,
        positives: Tensor,
        logit_scale: Tensor,
        dtype: torch.dtype,
        tensors: Mapping[str, tuple[Tensor, Tensor]],
        r0: int,
        r1: int,
        num_cols: int,
    ) -> None:
        self.direction = direction
        self.positives = positives
        self.logit_scale = logit_scale
        self.dtype = dtype
        self.num_cols = num_cols
        self._tensors, self._r0, self._r1 = tensors, r0, r1

    def _get(self, name: str, side: int) -> Tensor:
        if name not in self._tensors:
            raise KeyError(
                f"the target reads {name!r}, which is not among its inputs "
                f"({', '.join(sorted(self._tensors)) or 'none'}): list it in Target.inputs"
            )
        return self._tensors[name][side].detach()

    def has(self, name: str) -> bool:
        """Whether the input ``name`` is there (an optional input may be absent)."""
        return name in self._tensors

    def rows(self, name: str) -> Tensor:
        return self._get(name, 0)[self._r0 : self._r1]

    def cols(self, name: str) -> Tensor:
        return self._get(name, 1)

    @property
    def num_rows(self) -> int:
        return self._r1 - self._r0

    @property
    def positive_mask(self) -> Tensor:
        cols = torch.arange(self.num_cols, device=self.positives.device)
        return cols[None, :] == self.positives[:, None]

    def logits(self, row_name: str, col_name: str) -> Tensor:
        """``s' rows(row_name) @ cols(col_name).T`` (C, N), in the compute dtype."""
        return logits(self.rows(row_name), self.cols(col_name), self.logit_scale, self.dtype)


def compute_dtype(tensors: Sequence[Tensor]) -> torch.dtype:
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


def _mm(a: Tensor, b: Tensor) -> Tensor:
    """``a @ b`` honouring autocast; outside autocast ``a`` is cast to ``b``'s dtype."""
    if torch.is_autocast_enabled(a.device.type):
        return torch.mm(a, b)
    return torch.mm(a.to(b.dtype), b)


def logits(rows: Tensor, cols: Tensor, scale: Tensor, dtype: torch.dtype) -> Tensor:
    """``scale * rows @ cols.T`` as a fresh ``dtype`` tensor (scale folded into the rows)."""
    out = _mm(rows * scale.to(rows.dtype), cols.t())
    return out.to(dtype) if out.dtype != dtype else out


def _block_rows(plan: Plan, n_rows: int, n_cols: int) -> int:
    if plan.chunk_rows is not None:
        return max(1, min(n_rows, plan.chunk_rows))
    return max(1, min(n_rows, plan.chunk_elements // max(n_cols, 1)))


def _set_indices(target: tuple | None) -> tuple[int, ...]:
    """Input indices of the object-id sets a term's target reads."""
    return target[1:3] if target is not None and target[0] == "iou" else ()


def flags(t: Tensor) -> Tensor:
    """(N,) bool of per-sample flags given as (N,) bool or (N, 1) 0/1 floats."""
    return t.reshape(t.shape[0], -1)[:, 0] > 0.5


def target_block(
    target: tuple | None,
    ts: Sequence[Tensor],
    sets: dict,
    r0: int,
    r1: int,
    s: Tensor,
    dtype: torch.dtype,
    diag: Tensor,
    direction: str,
    num_cols: int,
):
    """What a kernel gets as ``y`` for rows ``r0:r1`` of a term (see :class:`Term`)."""
    if target is None:
        return None
    kind = target[0]
    if kind == "feat":
        block = logits(ts[target[1]][r0:r1], ts[target[2]], s, dtype)
        if len(target) > 3:  # + rows without ROIs: (logits, hard-label rows)
            return block, ts[target[3]][r0:r1, 0] < 0.5
        return block
    if kind == "valid":  # (valid rows, valid columns, global rows / global valid rows)
        rows, cols = flags(ts[target[1]])[r0:r1], flags(ts[target[2]])
        return rows, cols, cols.numel() / cols.sum().clamp_min(1).to(dtype)
    if kind == "iou":
        (a, sa), (b, sb) = sets[target[1]], sets[target[2]]
        return (a[r0:r1], sa[r0:r1], b, sb)
    if kind == "custom":
        tensors = {name: (ts[i], ts[j]) for name, i, j in target[1]}
        return RowBlock(direction, diag, s, dtype, tensors, r0, r1, num_cols)
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


def evaluate_plan(
    plan: Plan, scale: Tensor, ts: Sequence[Tensor], weights: Tensor | None, need_grad: bool
) -> tuple[Tensor, Tensor | None, list[Tensor | None]]:
    """Evaluate ``plan``: component values (K,), d/d scale, d/d each of ``ts``.

    ``weights`` (K,) weights each component in the gradient (default: all ones).
    Values are always the unweighted components.
    """
    floats = [t for t in ts if t.dtype.is_floating_point]
    cdtype = compute_dtype(floats)
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
                sets[idx] = canonical_sets(ts[idx])
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
            x0 = logits(q, cols, s, cdtype)
            for i, term in enumerate(d.terms):
                x = x0 if i == len(d.terms) - 1 else x0.clone()
                y = target_block(term.target, ts, sets, r0, r1, s, cdtype, diag, d.name, n_cols)
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


class RowBlockLoss(torch.autograd.Function):
    """Values of a plan; gradients computed in the forward, scaled in the backward."""

    @staticmethod
    def forward(ctx, plan: Plan, scale: Tensor, *ts: Tensor) -> Tensor:  # type: ignore[override]
        values, gscale, grads = evaluate_plan(plan, scale, ts, None, need_grad=True)
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
                _, gscale, grads = evaluate_plan(ctx.plan, scale, ts, gvalues, need_grad=True)
        out: list[Tensor | None] = [None]
        out.append(None if gscale is None else (gscale * g).to(scale.dtype).reshape(scale.shape))
        for t, gt in zip(ts, grads):
            out.append(None if gt is None else (gt * g).to(t.dtype))
        return tuple(out)


def run_plan(plan: Plan, scale: Tensor | float, ts: Sequence[Tensor]) -> dict[str, Tensor]:
    """Evaluate ``plan`` as a differentiable dict ``{component: 0-d tensor}``."""
    scale = as_scale(scale, ts)
    needs = torch.is_grad_enabled() and (
        scale.requires_grad or any(t.requires_grad for t in ts if t.dtype.is_floating_point)
    )
    if needs:
        values = RowBlockLoss.apply(plan, scale, *ts)
    else:
        values = evaluate_plan(plan, scale, ts, None, need_grad=False)[0]
    return {name: values[i] for i, name in enumerate(plan.components)}


def as_scale(scale: Tensor | float, ts: Sequence[Tensor]) -> Tensor:
    """``logit_scale`` as a 0-d tensor (a float becomes one on the inputs' device)."""
    if not isinstance(scale, Tensor):
        scale = torch.tensor(float(scale), device=ts[0].device)
    if scale.numel() != 1:
        raise ValueError(f"logit_scale must be a scalar tensor, got shape {tuple(scale.shape)}")
    return scale.reshape(())


def check_features(*feats: Tensor) -> None:
    """Every feature tensor is (N, D) with the same N."""
    n = feats[0].shape[0]
    for f in feats:
        if f.dim() != 2:
            raise ValueError(f"features must be (N, D), got shape {tuple(f.shape)}")
        if f.shape[0] != n:
            raise ValueError(
                f"all features need the same batch size N, got {[g.shape[0] for g in feats]}"
            )
