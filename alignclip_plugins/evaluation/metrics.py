"""Metric functions on score matrices (pure tensor math, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
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
    rank = best_positive_rank(scores, positives)
    return {k: (rank < k).float().mean().item() for k in ks}


def best_positive_rank(scores: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """0-based rank of each query's best-scoring positive: (Q,) long.

    ``scores`` (Q, G), ``positives`` (Q, G) bool. The rank counts the negatives scoring at
    least as high as the best positive (ties are broken against the positive). Queries
    without a positive are an error.
    """
    if not bool(positives.any(dim=1).all()):
        raise ValueError("every query needs at least one positive in the gallery")
    best_positive = scores.masked_fill(~positives, float("-inf")).max(dim=1).values
    negatives = scores.masked_fill(positives, float("-inf"))
    return (negatives >= best_positive[:, None]).sum(dim=1)


def mean_per_class_recall(correct: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean over the classes present in ``labels`` of each class's accuracy (balanced
    accuracy). ``correct`` (N,) bool, ``labels`` (N,) class indices."""
    classes, inverse = torch.unique(labels, return_inverse=True)
    hits = torch.zeros(len(classes), device=correct.device).index_add_(0, inverse, correct.float())
    counts = torch.bincount(inverse, minlength=len(classes)).float()
    return (hits / counts).mean().item()


def average_precision(ranks: Sequence[int], num_positives: int) -> float:
    """Trapezoidal average precision of one query (revisitop's ``compute_ap``, the Holidays /
    Copydays ``score_ap_from_ranks_1``).

    ``ranks``: sorted 0-based positions of the retrieved positives (after junk removal);
    ``num_positives``: how many positives the query has in all. A positive never retrieved
    (absent from ``ranks``) adds nothing.
    """
    if num_positives <= 0:
        raise ValueError("average precision needs at least one positive")
    ap = 0.0
    step = 1.0 / num_positives
    for found, rank in enumerate(ranks):
        precision_0 = 1.0 if rank == 0 else found / rank
        precision_1 = (found + 1) / (rank + 1)
        ap += (precision_0 + precision_1) * step / 2.0
    return ap


def revisited_map(
    ranks: np.ndarray, gnd: Sequence[Mapping[str, Sequence[int]]], kappas: Sequence[int] = ()
) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
    """mAP over queries with junk images ignored: revisitop's ``compute_map``, exactly.

    ``ranks`` (N_db, Q): database indices of each query's results, best first (column q is
    query q). ``gnd[q]``: ``{"ok": positive indices, "junk": ignored indices}``. A junk
    image is removed from the ranking (positives after it move up one place). Queries
    without positives get NaN and are left out of the mean. Returns ``(mAP, APs (Q,),
    mean precision at each kappa (K,), precisions (Q, K))``; NaN mAP when no query has a
    positive.
    """
    nq = len(gnd)
    if ranks.shape[1] != nq:
        raise ValueError(f"ranks has {ranks.shape[1]} query columns for {nq} ground-truth entries")
    aps = np.zeros(nq)
    prs = np.zeros((nq, len(kappas)))
    total_ap, total_pr, nempty = 0.0, np.zeros(len(kappas)), 0
    for i in range(nq):
        positives = np.asarray(gnd[i].get("ok", ()), dtype=np.int64)
        if positives.size == 0:
            aps[i] = float("nan")
            prs[i, :] = float("nan")
            nempty += 1
            continue
        junk = np.asarray(gnd[i].get("junk", ()), dtype=np.int64)
        column = ranks[:, i]
        pos = np.flatnonzero(np.isin(column, positives))
        junk_pos = np.flatnonzero(np.isin(column, junk))
        # each positive moves up by the number of junk images ranked before it
        pos = pos - np.searchsorted(junk_pos, pos)
        ap = average_precision(pos.tolist(), len(positives))
        aps[i] = ap
        total_ap += ap
        pos1 = pos + 1
        for j, k in enumerate(kappas):
            kq = min(int(pos1.max()), k) if pos1.size else k
            prs[i, j] = (pos1 <= kq).sum() / kq
        total_pr += prs[i, :]
    valid = nq - nempty
    if valid == 0:
        return float("nan"), aps, np.full(len(kappas), float("nan")), prs
    return total_ap / valid, aps, total_pr / valid, prs


#: The revisited Oxford / Paris protocols: which of a query's image lists are positive and
#: which are ignored (Radenović et al. 2018).
REVISITED_PROTOCOLS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "easy": (("easy",), ("junk", "hard")),
    "medium": (("easy", "hard"), ("junk",)),
    "hard": (("hard",), ("junk", "easy")),
}


def revisited_protocol(
    ranks: np.ndarray,
    gnd: Sequence[Mapping[str, Sequence[int]]],
    kappas: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """``{easy,medium,hard}_mAP`` and ``..._mP@k`` from revisited Oxford / Paris ground truth
    (``gnd[q]`` with ``easy``, ``hard`` and ``junk`` index lists). A protocol where no query
    has a positive is left out."""
    out: dict[str, float] = {}
    for name, (ok_keys, junk_keys) in REVISITED_PROTOCOLS.items():
        protocol_gnd = [
            {
                "ok": [i for k in ok_keys for i in g.get(k, ())],
                "junk": [i for k in junk_keys for i in g.get(k, ())],
            }
            for g in gnd
        ]
        m, _, mpr, _ = revisited_map(ranks, protocol_gnd, kappas)
        if m == m:  # not NaN
            out[f"{name}_mAP"] = float(m)
            out.update({f"{name}_mP@{k}": float(p) for k, p in zip(kappas, mpr)})
    return out


def retrieval_map(
    scores: torch.Tensor, positives: torch.Tensor, max_rank: int | None = None
) -> tuple[float, torch.Tensor]:
    """Mean trapezoidal AP of ranking the gallery by ``scores`` (Q, G) for each query, with
    ``positives`` (Q, G) bool (DINO's Copydays evaluation). Ties keep gallery order. With
    ``max_rank`` only the top ``max_rank`` results count (DINO ranks the top 20). Returns
    ``(mAP, APs (Q,))``; queries without positives are an error."""
    if not bool(positives.any(dim=1).all()):
        raise ValueError("every query needs at least one positive in the gallery")
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    if max_rank is not None:
        order = order[:, :max_rank]
    hits = positives.gather(1, order)
    aps = torch.tensor(
        [
            average_precision(torch.nonzero(row).flatten().tolist(), int(n))
            for row, n in zip(hits.cpu(), positives.sum(dim=1).cpu())
        ]
    )
    return aps.mean().item(), aps


def sorted_softmax(logits: torch.Tensor, top: int) -> torch.Tensor:
    """Each row's softmax, sorted high to low, first ``top`` values: (Q, min(top, G))."""
    probs = torch.softmax(logits.float(), dim=1)
    return torch.topk(probs, min(top, probs.shape[1]), dim=1).values
