"""2-process gloo runs on CPU equal one process over the concatenated batch, for each loss."""

import functools

import torch

from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.testing import DistCase, check_distributed_equivalence, make_batch


def test_two_process_gloo_equals_one_process():
    b = make_batch(
        8, 6, extras=("roi_features", "tag_features"), objects=4, dtype=torch.float64, seed=3
    )
    # rank 1's object ids use fewer columns than rank 0's: exercises the cross-rank padding
    b["image_objects"][4:, 2:] = -1
    b["text_objects"][:4, 1:] = -1
    cases = [
        DistCase(
            "label-smoothing", functools.partial(LabelSmoothingLoss, alpha=0.3, chunk_rows=3), b
        ),
        DistCase("softclip", functools.partial(SoftClipLoss, chunk_rows=3, roi_tag_weight=0.5), b),
        DistCase(
            "softclip-js-target-grad",
            functools.partial(SoftClipLoss, divergence="js", target_grad=True, v2l_target="R2A"),
            b,
        ),
        DistCase(
            "guidance-mix", functools.partial(GuidanceMixLoss, gamma=0.4, target_grad=True), b
        ),
        DistCase("object-iou", functools.partial(ObjectIouLoss, beta=0.6, chunk_rows=3), b),
    ]
    check_distributed_equivalence(cases, world_size=2, rtol=1e-9, atol=1e-11)
