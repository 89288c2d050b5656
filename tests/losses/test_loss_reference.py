"""The direct reference (alignclip_plugins.losses.reference) against facts that do not use it:
upstream ClipLoss, the hard-label limits, hand-computed IoUs, the definitions of KL and CE."""

import torch
from open_clip.loss import ClipLoss

from alignclip_plugins.losses import reference as R
from alignclip_plugins.testing import make_batch
from alignclip_plugins.testing import reference as kit_reference

F64 = torch.float64


def inputs(n=6, seed=0):
    b = make_batch(n, 5, extras=("roi_features", "tag_features"), objects=3, dtype=F64, seed=seed)
    return [b[k].detach() for k in ("image_features", "text_features", "roi_features",
                                    "tag_features", "logit_scale")], b  # fmt: skip


def test_clip_and_hard_label_limits():
    (v, t, r, a, s), b = inputs()
    upstream = ClipLoss()(v, t, s)
    torch.testing.assert_close(R.clip(v, t, s), upstream)
    torch.testing.assert_close(R.label_smoothing(v, t, s, 0.0), upstream)
    io, to = b["image_objects"], b["text_objects"]
    torch.testing.assert_close(R.object_iou(v, t, s, io, to, beta=0.0), upstream)
    hard = R.softclip(v, t, r, a, s, beta=0.0, symmetric=False, relation_enhanced=False,
                      mu=0.0, roi_tag_weight=0.0)  # fmt: skip
    torch.testing.assert_close(hard["soft"], upstream)  # KL to a one-hot target = CE
    assert kit_reference is R


def test_iou_and_targets_by_hand():
    io = torch.tensor([[0, 1, 2], [5, -1, -1], [-1, -1, -1]])
    to = torch.tensor([[1, 2], [5, 6], [7, -1]])
    want = torch.tensor([[2 / 3, 0, 0], [0, 0.5, 0], [0, 0, 0]], dtype=F64)
    torch.testing.assert_close(R.iou_matrix(io, to), want)
    v2l, l2v = R.object_iou_targets(io, to, beta=0.5)
    # row 0: S = [1, 0, 0] -> the positive keeps everything
    torch.testing.assert_close(v2l[0], torch.tensor([1.0, 0, 0], dtype=F64))
    torch.testing.assert_close(v2l.sum(1), torch.ones(3, dtype=F64))
    torch.testing.assert_close(l2v.sum(1), torch.ones(3, dtype=F64))


def test_divergences_and_disentangling():
    p = torch.softmax(torch.randn(4, 4, dtype=F64), 1)
    q = torch.softmax(torch.randn(4, 4, dtype=F64), 1)
    torch.testing.assert_close(R.kl(p, q), R.cross_entropy(p, q) - R.cross_entropy(p, p))
    torch.testing.assert_close(R.sym_kl(p, q), R.sym_kl(q, p))
    assert (R.js(p, q) <= torch.log(torch.tensor(2.0, dtype=F64))).all()
    star = R.neg_disentangle(p)
    torch.testing.assert_close(star.sum(1), torch.ones(4, dtype=F64))
    torch.testing.assert_close(star[1], p[1, [0, 2, 3]] / p[1, [0, 2, 3]].sum())


def test_roi_valid_all_true_changes_nothing():
    (v, t, r, a, s), b = inputs(seed=2)
    every = torch.ones(6, dtype=torch.bool)
    plain, flagged = R.softclip(v, t, r, a, s), R.softclip(v, t, r, a, s, roi_valid=every)
    for k in plain:
        torch.testing.assert_close(flagged[k], plain[k])
    io, to = b["image_objects"], b["text_objects"]
    plain = R.softclip_alignclip(v, t, r, a, s, io, to)
    flagged = R.softclip_alignclip(v, t, r, a, s, io, to, roi_valid=every)
    for k in plain:
        torch.testing.assert_close(flagged[k], plain[k])
