import pytest
import torch

from alignclip_plugins.evaluation.metrics import recall_at_k, topk_accuracy, topk_correct


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
