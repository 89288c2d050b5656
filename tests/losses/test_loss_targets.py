"""The public target API (alignclip_plugins.losses.targets): a plugin's target on the engine."""

import pytest
import torch

from alignclip_plugins.losses import functional as F
from alignclip_plugins.losses import reference as R
from alignclip_plugins.losses.base import MissingLossInputError
from alignclip_plugins.losses.config import SoftTerms
from alignclip_plugins.losses.targets import ClipTerm, Target, TargetLoss, target_loss
from alignclip_plugins.testing import check_permutation_invariance, loss_and_grads, make_batch


class SoftClipTarget(Target):
    """SoftCLIP's softened target (eq. 8), written with the public API."""

    def __init__(self, rows: str, cols: str, beta: float = 0.3) -> None:
        self.inputs = tuple(dict.fromkeys((rows, cols)))
        self.names, self.beta = (rows, cols), beta

    def log_rows(self, block):
        y = block.logits(*self.names)
        return F.softclip_target_log_rows(y, block.positive_mask, self.beta)


class Smoothed(Target):
    """Label smoothing through ``rows`` (probabilities)."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha

    def rows(self, block):
        on, off = F.label_smoothing_weights(block.num_cols, self.alpha)
        return torch.where(block.positive_mask, on, off).to(block.dtype)


def batch(n=9, seed=0):
    return make_batch(n, 6, extras=("roi_features", "tag_features"), dtype=torch.float64, seed=seed)


def test_cross_entropy_target_is_the_label_smoothing_loss():
    b = batch()
    got, got_g = loss_and_grads(TargetLoss(Smoothed(0.3), name="ls", chunk_rows=4), b)
    want, want_g = loss_and_grads(
        TargetLoss(Smoothed(0.3), name="ls"), b
    )  # one block: the same numbers
    v, t, s = (b[k].detach() for k in ("image_features", "text_features", "logit_scale"))
    torch.testing.assert_close(got["ls_loss"], R.label_smoothing(v, t, s, 0.3))
    torch.testing.assert_close(got["total"], want["total"])
    for k in want_g:
        torch.testing.assert_close(got_g[k], want_g[k])


def test_soft_terms_and_clip_terms_are_softclip():
    b = batch(seed=1)
    v, t, r, a, s = (b[k] for k in ("image_features", "text_features", "roi_features",
                                     "tag_features", "logit_scale"))  # fmt: skip
    roi_tag = ClipTerm("roi_tag", "roi_features", "tag_features", 0.7)
    out = target_loss(
        v, t, s, SoftClipTarget("roi_features", "roi_features"),
        SoftClipTarget("tag_features", "tag_features"),
        inputs={"roi_features": r, "tag_features": a}, soft=SoftTerms(), clip_terms=[roi_tag],
        chunk_rows=4,
    )  # fmt: skip
    want = F.softclip_loss(v, t, r, a, s, roi_tag_weight=0.7)
    assert set(out) == set(want)
    for k in want:
        torch.testing.assert_close(out[k], want[k], rtol=1e-9, atol=1e-11)
    # as a module, with gradients to the ROI / tag features through the ROI-tag term only
    loss = TargetLoss(
        SoftClipTarget("roi_features", "roi_features"),
        SoftClipTarget("tag_features", "tag_features"),
        soft=SoftTerms(), clip_terms=[roi_tag],
    )  # fmt: skip
    got, got_g = loss_and_grads(loss, b)
    ref = {k: b[k].detach().clone().requires_grad_() for k in b}
    total = sum(R.softclip(*(ref[k] for k in ("image_features", "text_features", "roi_features",
                                                "tag_features", "logit_scale")),
                           roi_tag_weight=0.7).values())  # fmt: skip
    total.backward()
    for k in got_g:
        torch.testing.assert_close(got_g[k], ref[k].grad, rtol=1e-9, atol=1e-11, msg=k)
    check_permutation_invariance(loss, b)


def test_mistakes_are_named():
    with pytest.raises(TypeError, match="must define rows\\(block\\) or log_rows\\(block\\)"):

        class Nothing(Target):
            inputs = ()

    class WrongShape(Target):
        def rows(self, block):
            return torch.ones(block.num_rows, 2, dtype=block.dtype)

    class Undeclared(Target):
        def rows(self, block):
            return block.rows("labels")

    b = batch(4)
    v, t, s = b["image_features"], b["text_features"], b["logit_scale"]
    with pytest.raises(
        ValueError, match=r"WrongShape.rows gave shape \(4, 2\) for a block of \(4, 4\)"
    ):
        target_loss(v, t, s, WrongShape())
    with pytest.raises(KeyError, match="reads 'labels'.*list it in Target.inputs"):
        target_loss(v, t, s, Undeclared())
    with pytest.raises(KeyError, match="needs the inputs \\['roi_features'\\]"):
        target_loss(v, t, s, SoftClipTarget("roi_features", "roi_features"))
    with pytest.raises(ValueError, match="'roi_features' needs one row per sample"):
        target_loss(v, t, s, SoftClipTarget("roi_features", "roi_features"),
                    inputs={"roi_features": torch.zeros(3, 6, dtype=torch.float64)})  # fmt: skip
    with pytest.raises(ValueError, match="reserved"):
        TargetLoss(SoftClipTarget("image", "image"))
    with pytest.raises(MissingLossInputError, match="needs 'roi_features'.*a plugin"):
        TargetLoss(SoftClipTarget("roi_features", "roi_features"))(v, t, s)
