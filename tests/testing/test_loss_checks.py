"""The kit's checks pass on correct losses and catch broken ones (negative controls)."""

import functools

import pytest
import torch
from open_clip.loss import ClipLoss
from torch import nn

from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.testing import (
    DistCase,
    check_autocast_finite,
    check_distributed_equivalence,
    check_hard_label_limit,
    check_loss_matches_targets,
    check_permutation_invariance,
    check_targets_are_distributions,
    loss_and_grads,
    make_batch,
)


class Clip(ClipLoss):
    """Upstream ClipLoss accepting (and ignoring) extra inputs."""

    def forward(
        self,
        image_features,
        text_features,
        logit_scale,
        logit_bias=None,
        output_dict=False,
        **extra,
    ):
        return super().forward(image_features, text_features, logit_scale, output_dict=output_dict)


class PositionWeighted(nn.Module):
    """Broken: weights rows by their position in the batch."""

    def forward(self, image_features, text_features, logit_scale, output_dict=False, **extra):
        logits = logit_scale * image_features @ text_features.T
        n = logits.shape[0]
        per_row = nn.functional.cross_entropy(logits, torch.arange(n), reduction="none")
        return {"loss": (per_row * torch.linspace(0.5, 1.5, n)).mean()}


class NaiveExp(nn.Module):
    """Broken: a softmax without max subtraction overflows in half precision."""

    def forward(self, image_features, text_features, logit_scale, output_dict=False, **extra):
        logits = logit_scale * image_features @ text_features.T
        log_z = torch.exp(logits).sum(1).log()
        return {"loss": (log_z - logits.diagonal()).mean()}


class NoGather(LabelSmoothingLoss):
    """Broken: ignores the other ranks."""

    def __init__(self, **kw):
        kw["world_size"] = 1
        super().__init__(**kw)


def test_make_batch_shapes():
    b = make_batch(5, 7, extras=("roi_features",), objects=3)
    assert b["image_features"].shape == (5, 7) and b["roi_features"].requires_grad
    assert b["image_objects"].dtype == torch.long and b["image_objects"].shape == (5, 3)
    torch.testing.assert_close(b["text_features"].norm(dim=1), torch.ones(5))


def test_targets_check():
    check_targets_are_distributions([torch.full((3, 3), 1 / 3)])
    with pytest.raises(AssertionError, match="rows sum"):
        check_targets_are_distributions([torch.full((3, 3), 0.3)])
    bad = torch.eye(3)
    bad[0, 1], bad[0, 2] = -0.5, 0.5
    with pytest.raises(AssertionError, match="negative"):
        check_targets_are_distributions([bad])


def test_loss_matches_targets_check():
    b = make_batch(6, 8)
    eye = torch.eye(6)
    check_loss_matches_targets(Clip(), b, (eye, eye))
    y = 0.7 * eye + 0.3 / 5 * (1 - eye)
    with pytest.raises(AssertionError, match="loss vs ce"):
        check_loss_matches_targets(LabelSmoothingLoss(alpha=0.2), b, (y, y))


def test_hard_label_limit_check():
    b = make_batch(6, 8)
    check_hard_label_limit(LabelSmoothingLoss(alpha=0.0), b)
    with pytest.raises(AssertionError, match="hard-label limit"):
        check_hard_label_limit(LabelSmoothingLoss(alpha=0.05), b)


def test_permutation_check():
    b = make_batch(6, 8)
    check_permutation_invariance(Clip(), b)
    with pytest.raises(AssertionError, match="permutation"):
        check_permutation_invariance(PositionWeighted(), b)


def test_autocast_check():
    b = make_batch(6, 8)
    check_autocast_finite(Clip, b)
    with pytest.raises(AssertionError, match="autocast"):
        check_autocast_finite(NaiveExp, b)


def test_loss_and_grads_reports_grads_of_inputs_requiring_grad():
    b = make_batch(4, 3, extras=("roi_features",), extras_require_grad=False)
    values, grads = loss_and_grads(Clip(), b)
    assert set(values) == {"contrastive_loss", "total"}
    assert set(grads) == {"image_features", "text_features", "logit_scale"}


def test_distributed_check_passes_upstream_and_catches_a_missing_gather():
    """One spawn: upstream ClipLoss (checked first) passes, a loss without gather fails."""
    b = make_batch(8, 6, dtype=torch.float64)
    cases = [
        DistCase("upstream", Clip, b),
        DistCase("nogather", functools.partial(NoGather, alpha=0.2), b, modes=((False, False),)),
    ]
    with pytest.raises(AssertionError, match="^nogather .*rank 0 term 'label_smoothing_loss'"):
        check_distributed_equivalence(cases, rtol=1e-9, atol=1e-11)
    with pytest.raises(ValueError, match="not an exact mode"):
        check_distributed_equivalence([DistCase("x", Clip, b, modes=((True, False),))])
