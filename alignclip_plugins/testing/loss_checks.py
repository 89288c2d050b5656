"""Reusable checks for soft-label CLIP losses (ours or a contributor's).

Plain functions: each raises ``AssertionError`` with a message when the property does
not hold and returns normally otherwise, so they run under pytest, unittest or a script
alike (pytest is not imported). A loss here is anything called like upstream
``ClipLoss``: ``loss(image_features=..., text_features=..., logit_scale=...,
output_dict=True, **extras) -> dict[str, Tensor]`` whose values sum to the loss.

A *batch* is a dict of the keyword inputs: ``image_features``, ``text_features`` (N, D),
``logit_scale`` (0-d multiplier) and any extras (per-sample tensors with N rows, e.g.
``roi_features`` or object ids). :func:`make_batch` builds one.

Checks:

* :func:`check_targets_are_distributions` - target matrices are non-negative, rows sum to 1;
* :func:`check_loss_matches_targets` - the loss is the mean CE / KL of those targets
  (computed directly by :func:`alignclip_plugins.losses.reference.explicit_targets_loss`);
* :func:`check_hard_label_limit` - the loss (configured at β = 0) equals upstream
  ``ClipLoss`` in value and gradients;
* :func:`check_permutation_invariance` - permuting the batch changes nothing but the order
  of the gradients;
* :func:`check_autocast_finite` - finite loss and gradients under bf16 / fp16 autocast;
* :func:`check_distributed_equivalence` - a multi-process gloo run on CPU matches one
  process over the concatenated batch (``local_loss`` on and off).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from alignclip_plugins.losses import reference

__all__ = [
    "DistCase",
    "LossFactory",
    "check_autocast_finite",
    "check_distributed_equivalence",
    "check_hard_label_limit",
    "check_loss_matches_targets",
    "check_permutation_invariance",
    "check_targets_are_distributions",
    "loss_and_grads",
    "make_batch",
]

#: ``factory(**distributed_kwargs) -> loss module``; kwargs are upstream's ``local_loss,
#: gather_with_grad, rank, world_size, use_horovod``. Must be picklable for the
#: distributed check (a class, or ``functools.partial`` of one, defined in a module).
LossFactory = Callable[..., torch.nn.Module]

Batch = dict[str, Tensor]
_GRADABLE = ("image_features", "text_features", "logit_scale")


# ---------------------------------------------------------------------------------------
# Inputs and evaluation
# ---------------------------------------------------------------------------------------


def make_batch(
    n: int = 8,
    dim: int = 16,
    *,
    extras: Sequence[str] = (),
    objects: int | None = None,
    num_object_ids: int = 6,
    logit_scale: float = 10.0,
    seed: int = 0,
    dtype: torch.dtype = torch.float32,
    extras_require_grad: bool = True,
) -> Batch:
    """Random L2-normalised features (N, D) requiring grad, plus named extra features.

    ``objects=M`` adds ``image_objects`` / ``text_objects``: int64 (N, M) ids in
    ``[0, num_object_ids)`` with random -1 padding (some rows empty).
    """
    g = torch.Generator().manual_seed(seed)

    def feats() -> Tensor:
        x = torch.randn(n, dim, generator=g, dtype=dtype)
        return torch.nn.functional.normalize(x, dim=1)

    batch: Batch = {
        "image_features": feats().requires_grad_(True),
        "text_features": feats().requires_grad_(True),
        "logit_scale": torch.tensor(logit_scale, dtype=dtype, requires_grad=True),
    }
    for name in extras:
        batch[name] = feats().requires_grad_(extras_require_grad)
    if objects is not None:
        for name in ("image_objects", "text_objects"):
            ids = torch.randint(0, num_object_ids, (n, objects), generator=g)
            pad = torch.rand(n, objects, generator=g) < 0.3
            batch[name] = ids.masked_fill(pad, -1)
    return batch


def _clone(batch: Mapping[str, Tensor]) -> Batch:
    out = {}
    for k, v in batch.items():
        c = v.detach().clone()
        out[k] = c.requires_grad_(v.requires_grad) if c.dtype.is_floating_point else c
    return out


def loss_and_grads(loss: torch.nn.Module, batch: Mapping[str, Tensor]) -> tuple[dict, dict]:
    """``({term: value}, {input: grad})`` for one forward/backward on a fresh copy of ``batch``.

    Gradients are returned for the inputs that require grad (``None`` entries mean no
    gradient reached that input).
    """
    inputs = _clone(batch)
    terms = loss(**inputs, output_dict=True)
    if not isinstance(terms, dict) or not terms:
        raise AssertionError(
            f"loss(..., output_dict=True) must return a non-empty dict, got {type(terms)}"
        )
    total = sum(terms.values())
    leaves = {k: v for k, v in inputs.items() if v.requires_grad}
    grads = torch.autograd.grad(total, list(leaves.values()), allow_unused=True) if leaves else []
    values = {k: v.detach() for k, v in terms.items()}
    values["total"] = total.detach()
    return values, dict(zip(leaves, grads))


def _close(a: Tensor | None, b: Tensor | None, rtol: float, atol: float, what: str) -> None:
    if a is None and b is None:
        return
    a = torch.zeros_like(b) if a is None else a
    b = torch.zeros_like(a) if b is None else b
    a, b = a.detach().double(), b.detach().double()
    if a.shape != b.shape:
        raise AssertionError(f"{what}: shapes differ {tuple(a.shape)} vs {tuple(b.shape)}")
    if not torch.allclose(a, b, rtol=rtol, atol=atol):
        err = (a - b).abs().max().item()
        raise AssertionError(f"{what}: max abs difference {err:.3g} (rtol={rtol}, atol={atol})")


# ---------------------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------------------


def check_targets_are_distributions(targets: Sequence[Tensor], *, atol: float = 1e-5) -> None:
    """Each target matrix is (N, N') with non-negative entries and rows summing to 1."""
    for i, t in enumerate(targets):
        if t.dim() != 2:
            raise AssertionError(
                f"target {i}: expected a (N, N') matrix, got shape {tuple(t.shape)}"
            )
        if not torch.isfinite(t).all():
            raise AssertionError(f"target {i}: non-finite entries")
        if (t < 0).any():
            raise AssertionError(f"target {i}: negative entries (min {t.min().item():.3g})")
        sums = t.double().sum(1)
        if not torch.allclose(sums, torch.ones_like(sums), atol=atol, rtol=0):
            raise AssertionError(
                f"target {i}: rows sum to {sums.min().item():.6g}..{sums.max().item():.6g}, not 1"
            )


def check_loss_matches_targets(
    loss: torch.nn.Module,
    batch: Mapping[str, Tensor],
    targets: tuple[Tensor, Tensor],
    *,
    kind: str = "ce",
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """The loss equals ``½ (mean_i D(y_i, P_i(I,T)) + mean_j D(y'_j, P_j(T,I)))``.

    ``targets`` = (image→text targets, text→image targets), each (N, N); ``kind`` is
    ``"ce"`` (cross-entropy H) or ``"kl"`` (KL(y || P)). Computed directly in float64.
    """
    if kind not in ("ce", "kl"):
        raise ValueError("kind must be 'ce' or 'kl'")
    values, _ = loss_and_grads(loss, batch)
    v, t, s = (batch[k].detach().double() for k in _GRADABLE)
    ys = tuple(y.detach().double() for y in targets)
    expected = reference.explicit_targets_loss(v, t, s, ys, kind)  # type: ignore[arg-type]
    _close(values["total"], expected, rtol, atol, f"loss vs {kind} of its targets")


# ---------------------------------------------------------------------------------------
# Hard-label limit, permutation, autocast
# ---------------------------------------------------------------------------------------


def check_hard_label_limit(
    loss: torch.nn.Module, batch: Mapping[str, Tensor], *, rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """``loss`` (configured in its hard-label limit, β = 0) equals upstream ``ClipLoss``.

    Both the value and the gradients with respect to every input that requires grad.
    """
    from open_clip.loss import ClipLoss

    got, got_g = loss_and_grads(loss, batch)
    core = {k: batch[k] for k in _GRADABLE}
    want, want_g = loss_and_grads(ClipLoss(), core)
    _close(got["total"], want["total"], rtol, atol, "hard-label limit: loss vs ClipLoss")
    for k in want_g:
        _close(got_g.get(k), want_g[k], rtol, atol, f"hard-label limit: d/d{k} vs ClipLoss")


def _per_sample(batch: Mapping[str, Tensor]) -> list[str]:
    n = batch["image_features"].shape[0]
    return [k for k, v in batch.items() if v.dim() >= 1 and v.shape[0] == n]


def check_permutation_invariance(
    loss: torch.nn.Module,
    batch: Mapping[str, Tensor],
    *,
    seed: int = 0,
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """Permuting every per-sample input by one permutation leaves the loss unchanged.

    Gradients of per-sample inputs are permuted the same way; d/d logit_scale unchanged.
    """
    n = batch["image_features"].shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    if n > 1 and torch.equal(perm, torch.arange(n)):
        perm = perm.roll(1)
    keys = _per_sample(batch)
    permuted = {k: (v[perm] if k in keys else v) for k, v in batch.items()}
    base, base_g = loss_and_grads(loss, batch)
    got, got_g = loss_and_grads(loss, permuted)
    for k in base:
        _close(got[k], base[k], rtol, atol, f"permutation: term {k!r}")
    for k, g in base_g.items():
        expected = g[perm] if (g is not None and k in keys) else g
        _close(got_g.get(k), expected, rtol, atol, f"permutation: d/d{k}")


def check_autocast_finite(
    factory: Callable[[], torch.nn.Module],
    batch: Mapping[str, Tensor],
    *,
    device_type: str = "cpu",
    dtypes: Sequence[torch.dtype] = (torch.bfloat16, torch.float16),
    logit_scale: float = 100.0,
) -> None:
    """Under autocast, features from a linear layer give a finite loss and finite gradients.

    Float per-sample inputs are re-created as ``normalize(x @ W)`` inside autocast (W a
    trainable weight per input), ``logit_scale`` set to ``logit_scale`` (the usual
    clamp, the hardest case); the gradients of every W and of the scale must be finite.
    """
    device = torch.device(device_type)
    keys = [k for k in _per_sample(batch) if batch[k].dtype.is_floating_point]
    for dtype in dtypes:
        g = torch.Generator().manual_seed(0)
        weights = {}
        raw = {}
        for k in keys:
            d = batch[k].shape[1]
            weights[k] = (torch.randn(d, d, generator=g) / d**0.5).to(device).requires_grad_(True)
            raw[k] = batch[k].detach().to(device)
        scale = torch.tensor(logit_scale, device=device, requires_grad=True)
        inputs = {
            k: (v.to(device) if isinstance(v, Tensor) else v) for k, v in _clone(batch).items()
        }
        loss = factory().to(device)
        with torch.autocast(device_type, dtype=dtype):
            for k in keys:
                inputs[k] = torch.nn.functional.normalize(raw[k] @ weights[k], dim=-1)
            inputs["logit_scale"] = scale
            terms = loss(**inputs, output_dict=True)
            total = sum(terms.values())
        if not torch.isfinite(total).all():
            raise AssertionError(f"autocast {dtype}: loss is {total.item()}")
        total.backward()
        for name, p in list(weights.items()) + [("logit_scale", scale)]:
            if p.grad is None:
                continue
            if not torch.isfinite(p.grad).all():
                raise AssertionError(f"autocast {dtype}: non-finite gradient for {name}")


# ---------------------------------------------------------------------------------------
# Distributed equivalence (gloo, CPU, torch.multiprocessing)
# ---------------------------------------------------------------------------------------


@dataclass
class DistCase:
    """One loss to check: a picklable ``factory(**dist_kwargs)`` and a batch."""

    name: str
    factory: LossFactory
    batch: Batch
    modes: Sequence[tuple[bool, bool]] = ((False, False), (False, True), (True, True))
    trim_id_padding: bool = True
    extra: dict = field(default_factory=dict)


def _shard(batch: Mapping[str, Tensor], rank: int, world: int, trim: bool) -> Batch:
    keys = _per_sample(batch)
    n = batch["image_features"].shape[0]
    if n % world:
        raise ValueError(f"batch size {n} is not divisible by world size {world}")
    m = n // world
    out = {}
    for k, v in _clone(batch).items():
        if k in keys:
            part = v.detach()[rank * m : (rank + 1) * m].clone()
            if not part.dtype.is_floating_point and part.dim() == 2 and trim:
                used = (part >= 0).any(0).nonzero()
                width = int(used.max()) + 1 if used.numel() else 0
                part = part[:, :width].contiguous()  # ranks then hold different widths
            out[k] = part.requires_grad_(v.requires_grad) if part.dtype.is_floating_point else part
        else:
            out[k] = v
    return out


def _worker(rank: int, world: int, init_file: str, out_dir: str, cases: list) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        results = {}
        for case in cases:
            for local_loss, gather_with_grad in case.modes:
                loss = case.factory(
                    local_loss=local_loss,
                    gather_with_grad=gather_with_grad,
                    rank=rank,
                    world_size=world,
                    use_horovod=False,
                )
                shard = _shard(case.batch, rank, world, case.trim_id_padding)
                values, grads = loss_and_grads(loss, shard)
                results[(case.name, local_loss, gather_with_grad)] = (values, grads)
        torch.save(results, os.path.join(out_dir, f"rank{rank}.pt"))
    finally:
        dist.destroy_process_group()


def check_distributed_equivalence(
    cases: Sequence[DistCase], *, world_size: int = 2, rtol: float = 1e-5, atol: float = 1e-6
) -> None:
    """Run every case in ``world_size`` gloo processes and compare with one process.

    The batch is split into equal contiguous shards, one per rank (integer id tensors
    trimmed to each shard's own width, so ranks pad differently). Expected, as for
    upstream ``ClipLoss`` (each rank's DDP gradient is later averaged over ranks):

    * without ``local_loss``: every rank's loss equals the single-process loss;
    * with ``local_loss``: the mean of the rank losses equals it;
    * per-sample gradients on rank r equal the single-process gradients of its rows,
      times ``world_size`` with ``gather_with_grad`` (its all-gather backward sums the
      gradients of all ranks' losses); ``logit_scale``'s gradient averaged over ranks
      equals the single-process one.

    ``local_loss`` without ``gather_with_grad`` is upstream's approximation (gathered
    columns carry no gradient) and is not an equivalence; it is not checked.
    """
    import torch.multiprocessing as mp

    for case in cases:
        if (True, False) in case.modes:
            raise ValueError(
                f"{case.name}: local_loss without gather_with_grad is not an exact mode"
            )
    with tempfile.TemporaryDirectory() as tmp:
        init_file = os.path.join(tmp, "rendezvous")
        mp.spawn(
            _worker, args=(world_size, init_file, tmp, list(cases)), nprocs=world_size, join=True
        )
        per_rank = [torch.load(os.path.join(tmp, f"rank{r}.pt")) for r in range(world_size)]
    for case in cases:
        single = case.factory(
            local_loss=False, gather_with_grad=False, rank=0, world_size=1, use_horovod=False
        )
        want, want_g = loss_and_grads(single, case.batch)
        n = case.batch["image_features"].shape[0]
        m = n // world_size
        for local_loss, gwg in case.modes:
            tag = f"{case.name} (local_loss={local_loss}, gather_with_grad={gwg})"
            ranks = [res[(case.name, local_loss, gwg)] for res in per_rank]
            for k in want:
                got = [vals[k] for vals, _ in ranks]
                if local_loss:
                    _close(
                        torch.stack(got).mean(), want[k], rtol, atol, f"{tag}: mean rank term {k!r}"
                    )
                else:
                    for r, g in enumerate(got):
                        _close(g, want[k], rtol, atol, f"{tag}: rank {r} term {k!r}")
            factor = world_size if gwg else 1
            for k, g in want_g.items():
                if k == "logit_scale":
                    got = [grads.get(k) for _, grads in ranks]
                    got = [torch.zeros_like(g) if x is None else x for x in got]
                    _close(torch.stack(got).mean(0), g, rtol, atol, f"{tag}: mean d/dlogit_scale")
                    continue
                for r, (_, grads) in enumerate(ranks):
                    expected = None if g is None else g[r * m : (r + 1) * m] * factor
                    _close(grads.get(k), expected, rtol, atol, f"{tag}: rank {r} d/d{k}")
