"""Metric functions on score matrices (pure tensor math, no I/O)."""

from __future__ import annotations

from collections.abc import Sequence

import torch


def topk_correct(
    logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int]
) -> dict[int, torch.Tensor]:
    """Per-sample hits: ``{k: BoolTensor (N,)}``, true when the target is among the top k.

    ``logits`` (N, C), ``targets`` (N,) class indices. Ties are broken against the target:
    a target ranks after every other class with the same score, so constant logits never
    count as correct.
    """
    target_score = logits.gather(1, targets[:, None])
    others = logits.clone()
    others.scatter_(1, targets[:, None], float("-inf"))
    rank = (others >= target_score).sum(dim=1)  # classes scoring at least as high
    return {k: rank < k for k in ks}


def topk_accuracy(
    logits: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)
) -> dict[int, float]:
    """Top-k accuracy in [0, 1] for each k (see :func:`topk_correct` for ties)."""
    return {k: hits.float().mean().item() for k, hits in topk_correct(logits, targets, ks).items()}


def recall_at_k(
    scores: torch.Tensor, positives: torch.Tensor, ks: Sequence[int] = (1, 5, 10)
) -> dict[int, float]:
    """Recall@k for retrieval with one or more positives per query.

    ``scores`` (Q, G) query-to-gallery similarities, ``positives`` (Q, G) bool. A query
    counts as a hit at k when any positive is among its top k (ties broken against the
    positives). Queries without a positive are an error.
    """
    if not bool(positives.any(dim=1).all()):
        raise ValueError("every query needs at least one positive in the gallery")
    best_positive = scores.masked_fill(~positives, float("-inf")).max(dim=1).values
    negatives = scores.masked_fill(positives, float("-inf"))
    rank = (negatives >= best_positive[:, None]).sum(dim=1)
    return {k: (rank < k).float().mean().item() for k in ks}
