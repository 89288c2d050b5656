"""Object-id sets as tensors: canonical form and intersection counts (private).

A sample's objects are a row of int ids padded with -1 (any negative id is padding;
duplicates count once). The Object-IoU formula built on these counts is
:func:`alignclip_plugins.losses.functional.object_iou_from_counts`.
"""

from __future__ import annotations

import torch
from torch import Tensor


def canonical_sets(ids: Tensor) -> tuple[Tensor, Tensor]:
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


def intersections(a: Tensor, b: Tensor) -> Tensor:
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


def pairwise_intersections(a: Tensor, b: Tensor, dtype: torch.dtype) -> Tensor:
    """The same counts by comparing every pair of slots (a form ``torch.compile`` fuses:
    the counts are recomputed on the fly instead of written to memory)."""
    b = torch.where(b >= 0, b, -2)  # padding never matches padding
    inter = torch.zeros(a.shape[0], b.shape[0], dtype=dtype, device=a.device)
    for m in range(a.shape[1]):
        for m2 in range(b.shape[1]):
            inter = inter + (a[:, m, None] == b[None, :, m2]).to(dtype)
    return inter
