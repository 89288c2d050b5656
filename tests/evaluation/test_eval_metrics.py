import numpy as np
import pytest
import torch

from alignclip_plugins.evaluation.metrics import (
    average_precision,
    best_positive_rank,
    mean_per_class_recall,
    recall_at_k,
    retrieval_map,
    revisited_map,
    revisited_protocol,
    sorted_softmax,
    topk_accuracy,
    topk_correct,
)


def test_topk_accuracy_hand_made():
    logits = torch.tensor([[0.9, 0.1, 0.0], [0.2, 0.5, 0.3], [0.1, 0.3, 0.6], [0.4, 0.35, 0.25]])
    targets = torch.tensor([0, 2, 2, 2])
    assert topk_accuracy(logits, targets, (1, 2, 3)) == {1: 0.5, 2: 0.75, 3: 1.0}


def test_ties_count_against_the_target():
    logits = torch.zeros(3, 4)  # every class ties: a constant model is never right at top-1
    targets = torch.tensor([0, 1, 3])
    hits = topk_correct(logits, targets, (1, 4))
    assert not hits[1].any() and hits[4].all()
    logits = torch.tensor([[1.0, 1.0, 0.0]])  # target ties with one other class
    assert topk_accuracy(logits, torch.tensor([1]), (1, 2)) == {1: 0.0, 2: 1.0}


def test_recall_with_several_captions_per_image():
    # 2 images, 4 captions: captions 0,1 -> image 0; captions 2,3 -> image 1
    scores = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.5]])
    positives = torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1]], dtype=torch.bool)
    assert recall_at_k(scores, positives, (1, 2)) == {1: 0.5, 2: 1.0}
    # image -> text: image 0: best positive 0.9 ranks first; image 1: best positive 0.7
    # ranks second, behind the negative 0.8
    assert recall_at_k(scores.T, positives.T, (1, 2)) == {1: 0.5, 2: 1.0}


def test_recall_needs_a_positive_per_query():
    with pytest.raises(ValueError, match="at least one positive"):
        recall_at_k(torch.rand(2, 2), torch.tensor([[1, 0], [0, 0]], dtype=torch.bool))


def test_best_positive_rank_breaks_ties_against_the_positive():
    scores = torch.tensor([[0.5, 0.5, 0.1], [0.2, 0.9, 0.9]])
    positives = torch.tensor([[1, 0, 0], [0, 1, 1]], dtype=torch.bool)
    # query 0: the positive ties with one negative -> rank 1; query 1: the best positive wins
    assert best_positive_rank(scores, positives).tolist() == [1, 0]


def test_mean_per_class_recall():
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    correct = torch.tensor([1, 0, 1, 1, 0, 0], dtype=torch.bool)
    assert mean_per_class_recall(correct, labels) == pytest.approx((0.5 + 2 / 3 + 0) / 3)


def test_average_precision_is_the_trapezoidal_one():
    assert average_precision([0], 1) == 1.0
    assert average_precision([1], 1) == pytest.approx(0.25)  # (0/1 + 1/2) / 2
    # positives at 0 and 2 of 2: (1 + 1) / 2 / 2 + (1/2 + 2/3) / 2 / 2
    assert average_precision([0, 2], 2) == pytest.approx(0.5 + (0.5 + 2 / 3) / 4)
    assert average_precision([0], 2) == pytest.approx(0.5)  # a positive never retrieved adds 0
    with pytest.raises(ValueError):
        average_precision([], 0)


def test_revisited_map_ignores_junk_like_revisitop():
    # one query over 6 database images ranked 3, 0, 5, 1, 4, 2; positives 0 and 1, junk 5
    ranks = np.array([[3, 0, 5, 1, 4, 2]]).T
    gnd = [{"ok": [0, 1], "junk": [5]}]
    m, aps, mpr, prs = revisited_map(ranks, gnd, kappas=(1, 5))
    # junk removed: positives at 0-based ranks 1 and 2
    expected = (0 + 1 / 2) / 2 / 2 + (1 / 2 + 2 / 3) / 2 / 2
    assert m == pytest.approx(expected) and aps[0] == pytest.approx(expected)
    # mP@k divides by min(k, last positive's 1-based rank): @1 -> 0/1, @5 -> 2/3
    assert mpr.tolist() == pytest.approx([0.0, 2 / 3])
    # without the junk entry, positive 1 sits at rank 3
    m_no_junk, *_ = revisited_map(ranks, [{"ok": [0, 1], "junk": []}])
    assert m_no_junk == pytest.approx((0 + 1 / 2) / 4 + (1 / 3 + 2 / 4) / 4)
    # a query without positives is left out of the mean
    two = np.array([[3, 0, 5, 1, 4, 2], [0, 1, 2, 3, 4, 5]]).T
    m2, aps2, _, _ = revisited_map(two, [gnd[0], {"ok": [], "junk": [1]}])
    assert m2 == pytest.approx(expected) and np.isnan(aps2[1])


def test_revisited_protocols_easy_medium_hard():
    # database ranked 3, 0, 2, 1 for the query; easy [0], hard [1], junk [2]
    ranks = np.array([[3, 0, 2, 1]]).T
    out = revisited_protocol(ranks, [{"easy": [0], "hard": [1], "junk": [2]}], kappas=(1,))
    assert out["easy_mAP"] == pytest.approx(0.25)  # 0 at rank 1; 2 and 1 ignored
    assert out["medium_mAP"] == pytest.approx(0.125 + (0.5 + 2 / 3) / 4)  # 0, 1 at ranks 1, 2
    assert out["hard_mAP"] == pytest.approx(0.25)  # 1 at rank 3, minus 2 ignored before it
    assert out["easy_mP@1"] == 0.0
    # no query with hard positives: the hard protocol is left out, not NaN
    out = revisited_protocol(ranks, [{"easy": [0], "hard": [], "junk": []}])
    assert "hard_mAP" not in out and "easy_mAP" in out


def test_retrieval_map_with_several_positives_and_max_rank():
    scores = torch.tensor([[0.9, 0.8, 0.7, 0.6], [0.1, 0.9, 0.2, 0.3]])
    positives = torch.tensor([[1, 0, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
    m, aps = retrieval_map(scores, positives)
    # query 0: positives at ranks 0 and 2 of 2; query 1: its positive at rank 3 of 1
    assert aps.tolist() == pytest.approx([0.5 + (0.5 + 2 / 3) / 4, (0 / 3 + 1 / 4) / 2])
    assert m == pytest.approx(aps.mean().item())
    _, cut = retrieval_map(scores, positives, max_rank=2)
    assert cut.tolist() == pytest.approx([0.5, 0.0])  # positives past rank 2 do not count


def test_sorted_softmax():
    logits = torch.tensor([[0.0, float(np.log(3.0)), 0.0]])
    assert sorted_softmax(logits, 2).tolist() == [pytest.approx([0.6, 0.2])]
    assert sorted_softmax(logits, 10).shape == (1, 3)
