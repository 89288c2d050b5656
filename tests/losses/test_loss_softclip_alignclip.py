"""softclip-alignclip: the convex mix of SoftCLIP and Object-IoU targets, against float64."""

import functools

import pytest
import torch

from alignclip_plugins.losses import reference as R
from alignclip_plugins.losses.softclip import SoftClipLoss
from alignclip_plugins.losses.softclip_alignclip import (
    SoftClipAlignClipLoss,
    softclip_alignclip_loss,
)
from alignclip_plugins.testing import (
    DistCase,
    check_autocast_finite,
    check_distributed_equivalence,
    check_hard_label_limit,
    check_permutation_invariance,
    loss_and_grads,
    make_batch,
)

EXTRAS = ("roi_features", "tag_features")


def batch(n=7, seed=0, dtype=torch.float64):
    return make_batch(n, 5, extras=EXTRAS, objects=3, num_object_ids=5, seed=seed, dtype=dtype)


@pytest.mark.parametrize(
    "opts",
    [
        dict(weight=0.5, beta=0.3, iou_beta=0.5, lam=1.0, mu=1.0, symmetric=True),
        dict(weight=0.2, beta=0.6, iou_beta=0.9, lam=0.5, mu=0.0, symmetric=True, rt=0.7),
        dict(weight=0.0, beta=0.3, iou_beta=0.5, lam=1.0, mu=1.0, symmetric=False),
        dict(weight=1.0, beta=0.3, iou_beta=0.5, lam=1.0, mu=1.0, symmetric=False),
    ],
)
@pytest.mark.parametrize("n", [2, 7])
def test_values_and_gradients_match_float64_reference(opts, n):
    b = batch(n, seed=n)
    rt = opts.pop("rt", 0.0)
    loss = SoftClipAlignClipLoss(**opts, roi_tag_weight=rt, chunk_rows=3)
    got, got_g = loss_and_grads(loss, b)
    ins = {k: v.detach().clone().requires_grad_(v.dtype.is_floating_point) for k, v in b.items()}
    want = R.softclip_alignclip(
        ins["image_features"],
        ins["text_features"],
        ins["roi_features"],
        ins["tag_features"],
        ins["logit_scale"],
        ins["image_objects"],
        ins["text_objects"],
        roi_tag_weight=rt,
        **opts,
    )
    names = {"soft": "soft_loss", "relation": "relation_loss", "clip": "contrastive_loss"}
    names["roi_tag"] = "roi_tag_loss"
    assert set(got) - {"total"} == {names[k] for k in want}  # zero-weight terms omitted
    for key, value in want.items():
        if key == "clip" and opts["mu"] == 0:
            assert "contrastive_loss" not in got
            continue
        torch.testing.assert_close(got[names[key]], value.detach(), rtol=1e-9, atol=1e-11)
    total = sum(v for k, v in want.items() if not (k == "clip" and opts["mu"] == 0))
    leaves = [k for k in got_g if k in ins]
    grads = torch.autograd.grad(total, [ins[k] for k in leaves], allow_unused=True)
    for k, g in zip(leaves, grads):
        torch.testing.assert_close(got_g[k], g, rtol=1e-8, atol=1e-10, msg=f"d/d{k}")


def test_weight_one_is_softclip():
    b = batch(8, seed=3)
    mixed, mixed_g = loss_and_grads(SoftClipAlignClipLoss(weight=1.0, roi_tag_weight=0.4), b)
    core = {k: v for k, v in b.items() if "objects" not in k}
    soft, soft_g = loss_and_grads(SoftClipLoss(roi_tag_weight=0.4), core)
    for k in soft:
        torch.testing.assert_close(mixed[k], soft[k], rtol=1e-10, atol=1e-12)
    for k in soft_g:
        torch.testing.assert_close(mixed_g[k], soft_g[k], rtol=1e-9, atol=1e-12)


def test_hard_label_limit_and_permutation():
    hard = SoftClipAlignClipLoss(
        weight=0.5, beta=0.0, iou_beta=0.0, symmetric=False, relation_enhanced=False, mu=0.0,
        roi_tag_weight=0.0,
    )  # fmt: skip
    check_hard_label_limit(hard, batch(6, dtype=torch.float32))
    check_permutation_invariance(SoftClipAlignClipLoss(chunk_rows=2), batch(9))


def test_functional_form_equals_module():
    b = batch(6, seed=5)
    out = softclip_alignclip_loss(
        b["image_features"], b["text_features"], b["roi_features"], b["tag_features"],
        b["logit_scale"], b["image_objects"], b["text_objects"], weight=0.3, roi_tag_weight=0.5,
    )  # fmt: skip
    mod, _ = loss_and_grads(SoftClipAlignClipLoss(weight=0.3, roi_tag_weight=0.5), b)
    assert set(mod) - {"total"} == {f"{'contrastive' if k == 'clip' else k}_loss" for k in out}
    torch.testing.assert_close(sum(out.values()).detach(), mod["total"])


def test_invalid_options_are_refused():
    with pytest.raises(ValueError, match="symmetric KL needs a target with no zero entry"):
        SoftClipAlignClipLoss(weight=0.0)
    with pytest.raises(ValueError, match="weight must be in"):
        SoftClipAlignClipLoss(weight=1.5)
    b = batch(4)
    del b["image_objects"]
    with pytest.raises(KeyError, match="image_objects.*'alignclip' plugin"):
        SoftClipAlignClipLoss()(**b)


def test_autocast_and_distributed_equivalence():
    check_autocast_finite(SoftClipAlignClipLoss, batch(8, dtype=torch.float32))
    b = batch(8, seed=4)
    b["image_objects"][4:, 1:] = -1  # rank 1 narrower: cross-rank id padding
    case = functools.partial(SoftClipAlignClipLoss, roi_tag_weight=0.5, chunk_rows=3)
    check_distributed_equivalence(
        [DistCase("softclip-alignclip", case, b)], world_size=2, rtol=1e-9, atol=1e-11
    )


def with_roi_valid(b, valid):
    b = dict(b)
    b["roi_valid"] = torch.tensor(valid)
    return b


VALID7 = [True, False, True, True, False, True, False]


@pytest.mark.parametrize(
    "opts",
    [
        dict(weight=0.5, symmetric=True, roi_tag_weight=0.7),
        dict(weight=0.2, beta=0.6, iou_beta=0.9, lam=0.5, mu=0.0, symmetric=True),
        dict(weight=0.5, symmetric=False, roi_tag_weight=1.0),
        dict(weight=1.0, symmetric=True, roi_tag_weight=0.3),
    ],
)
def test_samples_without_rois_take_the_hard_label(opts):
    """roi_valid: the SoftCLIP part of an ROI-less sample's target is e_i (not the softmax
    of a zero ROI vector), against the direct reference; values and gradients."""
    b = with_roi_valid(batch(7, seed=11), VALID7)
    loss = SoftClipAlignClipLoss(**opts, chunk_rows=3)
    got, got_g = loss_and_grads(loss, b)
    ins = {k: v.detach().clone().requires_grad_(v.dtype.is_floating_point) for k, v in b.items()}
    keys = ("image_features", "text_features", "roi_features", "tag_features", "logit_scale")
    want = R.softclip_alignclip(
        *(ins[k] for k in keys), ins["image_objects"], ins["text_objects"],
        roi_valid=ins["roi_valid"], **opts,
    )  # fmt: skip
    names = {"soft": "soft_loss", "relation": "relation_loss", "clip": "contrastive_loss"}
    names["roi_tag"] = "roi_tag_loss"
    assert set(got) - {"total"} == {names[k] for k in want}
    for key, value in want.items():
        torch.testing.assert_close(got[names[key]], value.detach(), rtol=1e-9, atol=1e-11)
    grads = torch.autograd.grad(sum(want.values()), [ins[k] for k in keys], allow_unused=True)
    for k, g in zip(keys, grads):
        g = torch.zeros_like(ins[k]) if g is None else g
        torch.testing.assert_close(got_g[k], g, rtol=1e-8, atol=1e-10, msg=f"d/d{k}")
    # the mask matters: ignoring it (the old behaviour) gives another loss
    ignored, _ = loss_and_grads(loss, {k: v for k, v in b.items() if k != "roi_valid"})
    assert abs(ignored["total"].item() - got["total"].item()) > 1e-3
    # the functional form takes the same flags
    out = softclip_alignclip_loss(
        *(b[k] for k in keys), b["image_objects"], b["text_objects"], roi_valid=b["roi_valid"],
        **opts,
    )  # fmt: skip
    torch.testing.assert_close(sum(out.values()).detach(), got["total"])


def test_weight_one_with_roi_valid_is_softclip():
    b = with_roi_valid(batch(7, seed=12), VALID7)
    mixed, mixed_g = loss_and_grads(SoftClipAlignClipLoss(weight=1.0, roi_tag_weight=0.4), b)
    core = {k: v for k, v in b.items() if "objects" not in k}
    soft, soft_g = loss_and_grads(SoftClipLoss(roi_tag_weight=0.4), core)
    for k in soft:
        torch.testing.assert_close(mixed[k], soft[k], rtol=1e-10, atol=1e-12)
    for k in soft_g:
        torch.testing.assert_close(mixed_g[k], soft_g[k], rtol=1e-9, atol=1e-12)


def test_distributed_equivalence_with_roi_valid():
    b = with_roi_valid(batch(8, seed=13), [True, False, True, True, True, True, False, True])
    case = functools.partial(SoftClipAlignClipLoss, roi_tag_weight=0.5, chunk_rows=3)
    check_distributed_equivalence(
        [DistCase("softclip-alignclip-roi-valid", case, b)], world_size=2, rtol=1e-9, atol=1e-11
    )
