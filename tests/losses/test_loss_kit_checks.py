"""Our losses run the plugin-author kit (alignclip_plugins.testing) against themselves."""

import functools

import pytest

from alignclip_plugins.losses import functional as Fn
from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.testing import (
    check_autocast_finite,
    check_hard_label_limit,
    check_loss_matches_targets,
    check_permutation_invariance,
    check_targets_are_distributions,
    make_batch,
)

EXTRAS = ("roi_features", "tag_features")


def batch(n=8, **kw):
    return make_batch(n, 12, extras=EXTRAS, objects=3, **kw)


FACTORIES = {
    "label-smoothing": functools.partial(LabelSmoothingLoss, alpha=0.2),
    "softclip": functools.partial(SoftClipLoss),
    "softclip-kl-no-relation": functools.partial(
        SoftClipLoss, symmetric=False, relation_enhanced=False
    ),
    "softclip-js-target-grad": functools.partial(SoftClipLoss, divergence="js", target_grad=True),
    "softclip-r2a": functools.partial(SoftClipLoss, v2l_target="R2A", l2v_target="A2R"),
    "guidance-mix": functools.partial(GuidanceMixLoss, gamma=0.3),
    "object-iou": functools.partial(ObjectIouLoss, beta=0.5),
}


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_permutation_invariance(name):
    check_permutation_invariance(FACTORIES[name](chunk_rows=3), batch(9))


@pytest.mark.parametrize("name", sorted(FACTORIES))
def test_autocast_bf16_fp16_finite(name):
    check_autocast_finite(FACTORIES[name], batch(8))


@pytest.mark.parametrize(
    "factory",
    [
        functools.partial(LabelSmoothingLoss, alpha=0.0),
        functools.partial(
            SoftClipLoss,
            beta=0.0,
            symmetric=False,
            relation_enhanced=False,
            mu=0.0,
            roi_tag_weight=0.0,
        ),
        functools.partial(ObjectIouLoss, beta=0.0),
    ],
    ids=["label-smoothing", "softclip", "object-iou"],
)
@pytest.mark.parametrize("n", [2, 10])
def test_hard_label_limit_is_upstream_cliploss(factory, n):
    check_hard_label_limit(factory(chunk_rows=3), batch(n))


def test_targets_are_distributions_and_define_the_loss():
    b = batch(7)
    n = 7
    ls = Fn.label_smoothing_targets(n, 0.2)
    check_targets_are_distributions(ls)
    check_loss_matches_targets(LabelSmoothingLoss(alpha=0.2), b, ls, kind="ce")

    for form in [("R2R", "A2A"), ("R2A", "A2R")]:
        sc = Fn.softclip_targets(
            b["roi_features"],
            b["tag_features"],
            b["logit_scale"],
            beta=0.3,
            v2l_target=form[0],
            l2v_target=form[1],
        )
        check_targets_are_distributions(sc)
        # KL(P̃ || P) only: the plain soft loss of eq. 10-11
        loss = SoftClipLoss(
            beta=0.3,
            symmetric=False,
            relation_enhanced=False,
            mu=0.0,
            roi_tag_weight=0.0,
            v2l_target=form[0],
            l2v_target=form[1],
        )
        check_loss_matches_targets(loss, b, sc, kind="kl")

    for beta in (0.0, 0.5, 1.0):
        oi = Fn.object_iou_targets(b["image_objects"], b["text_objects"], beta=beta)
        check_targets_are_distributions(oi)
        check_loss_matches_targets(ObjectIouLoss(beta=beta), b, oi, kind="ce")
