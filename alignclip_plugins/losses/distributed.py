"""All-gather of loss inputs across ranks, with upstream ``gather_features`` semantics.

Upstream's ``open_clip.loss.gather_features`` gathers exactly the image and text
features; soft-label losses also need ROI / tag features and object-id sets. Here any
number of tensors are gathered along dim 0 with the same rules:

* ``gather_with_grad=True``: differentiable all-gather (``torch.distributed.nn``), so
  gradients flow back to every rank's features;
* otherwise a plain all-gather; unless ``local_loss``, this rank's slot is replaced by
  its own (grad-carrying) tensor so that gradients reach the local features.

Integer tensors (object ids, padded with -1) never carry gradients; rows of different
ranks may be padded to different widths, so :func:`gather_object_ids` first agrees on
the widest one and pads every rank to it. All ranks must hold the same number of rows
(as upstream, whose all-gather requires equal shapes).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch
from torch import Tensor

try:
    import torch.distributed.nn
    from torch import distributed as dist

    HAS_DISTRIBUTED = True
except ImportError:  # pragma: no cover - torch built without distributed
    HAS_DISTRIBUTED = False

try:
    import horovod.torch as hvd
except ImportError:
    hvd = None

__all__ = ["gather_features", "gather_object_ids", "pad_object_ids"]


def _gather_one(
    t: Tensor,
    local_loss: bool,
    gather_with_grad: bool,
    rank: int,
    world_size: int,
    use_horovod: bool,
) -> Tensor:
    differentiable = t.dtype.is_floating_point and t.requires_grad
    if use_horovod:
        if hvd is None:
            raise RuntimeError("use_horovod=True but horovod is not installed")
        if differentiable and gather_with_grad:
            return hvd.allgather(t)
        with torch.no_grad():
            full = hvd.allgather(t)
        if differentiable and not local_loss:
            parts = list(full.chunk(world_size, dim=0))
            parts[rank] = t
            full = torch.cat(parts, dim=0)
        return full
    if not HAS_DISTRIBUTED:
        raise RuntimeError("torch.distributed is not available in this PyTorch build")
    if differentiable and gather_with_grad:
        with warnings.catch_warnings():  # same call as upstream ClipLoss; deprecated in torch 2.x
            warnings.simplefilter("ignore", FutureWarning)
            return torch.cat(torch.distributed.nn.all_gather(t.contiguous()), dim=0)
    parts = [torch.empty_like(t) for _ in range(world_size)]
    dist.all_gather(parts, t.detach().contiguous())
    if differentiable and not local_loss:
        parts[rank] = t
    return torch.cat(parts, dim=0)


def gather_features(
    *tensors: Tensor,
    local_loss: bool = False,
    gather_with_grad: bool = False,
    rank: int = 0,
    world_size: int = 1,
    use_horovod: bool = False,
) -> list[Tensor]:
    """All-gather each tensor along dim 0: ``(n, ...)`` per rank → ``(world_size * n, ...)``.

    Rank r's rows occupy ``[r * n, (r + 1) * n)``. A tensor that does not require grad
    (or is not floating point) is gathered without autograd. With ``world_size == 1`` the
    tensors are returned unchanged.
    """
    if world_size <= 1:
        return list(tensors)
    return [
        _gather_one(t, local_loss, gather_with_grad, rank, world_size, use_horovod) for t in tensors
    ]


def pad_object_ids(ids: Tensor, width: int, pad: int = -1) -> Tensor:
    """Right-pad ``(N, M)`` object ids to ``(N, width)`` with ``pad`` (``width >= M``)."""
    if ids.dim() != 2:
        raise ValueError(f"object ids must be (N, M), got shape {tuple(ids.shape)}")
    if width < ids.shape[1]:
        raise ValueError(f"cannot pad object ids of width {ids.shape[1]} to {width}")
    if width == ids.shape[1]:
        return ids
    out = ids.new_full((ids.shape[0], width), pad)
    out[:, : ids.shape[1]] = ids
    return out


def gather_object_ids(
    ids: Tensor, *, rank: int = 0, world_size: int = 1, use_horovod: bool = False
) -> Tensor:
    """All-gather ``(n, M_r)`` id sets whose width may differ per rank → ``(world_size * n, max M_r)``."""
    if world_size <= 1:
        return ids
    width = torch.tensor([ids.shape[1]], dtype=torch.long, device=ids.device)
    if use_horovod:
        if hvd is None:
            raise RuntimeError("use_horovod=True but horovod is not installed")
        widths = hvd.allgather(width)
    else:
        parts = [torch.empty_like(width) for _ in range(world_size)]
        dist.all_gather(parts, width)
        widths = torch.cat(parts)
    padded = pad_object_ids(ids.long(), int(widths.max()))
    return gather_features(padded, rank=rank, world_size=world_size, use_horovod=use_horovod)[0]


def concat_object_ids(parts: Sequence[Tensor]) -> Tensor:
    """Concatenate id sets of different widths along dim 0 (padding with -1)."""
    width = max(p.shape[1] for p in parts)
    return torch.cat([pad_object_ids(p, width) for p in parts], dim=0)
