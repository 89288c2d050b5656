"""The nn.Module losses: inputs, outputs, options, gradient accumulation."""

import pytest
import torch
from open_clip.loss import ClipLoss
from torch import nn

from alignclip_plugins.losses import functional as F
from alignclip_plugins.losses import reference as R
from alignclip_plugins.losses.base import MissingLossInputError
from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.testing import make_batch


def batch64(n=6):
    return make_batch(
        n, 5, extras=("roi_features", "tag_features"), objects=3, dtype=torch.float64, seed=n
    )


def test_modules_match_reference_and_sum_to_total():
    b = batch64()
    v, t, s = b["image_features"], b["text_features"], b["logit_scale"]
    r, a = b["roi_features"], b["tag_features"]
    ls = LabelSmoothingLoss(alpha=0.25)(**b, output_dict=True)
    assert list(ls) == ["label_smoothing_loss"]
    torch.testing.assert_close(ls["label_smoothing_loss"], R.label_smoothing(v, t, s, 0.25))

    sc = SoftClipLoss(beta=0.4, lam=0.5, mu=2.0, roi_tag_weight=0.3)
    out = sc(**b, output_dict=True)
    want = R.softclip(v, t, r, a, s, beta=0.4, lam=0.5, mu=2.0, roi_tag_weight=0.3)
    assert list(out) == ["soft_loss", "relation_loss", "contrastive_loss", "roi_tag_loss"]
    for k in want:
        torch.testing.assert_close(out[{"clip": "contrastive"}.get(k, k) + "_loss"], want[k])
    torch.testing.assert_close(sc(**b), sum(out.values()))

    gm = GuidanceMixLoss(gamma=0.25)(**b, output_dict=True)
    want = R.guidance_mix(v, t, r, a, s, gamma=0.25)
    assert set(gm) == {f"{k}_loss" for k in want}
    for k in want:
        torch.testing.assert_close(gm[f"{k}_loss"], want[k])

    oi = ObjectIouLoss(beta=0.7)(**b, output_dict=True)
    torch.testing.assert_close(
        oi["object_iou_loss"],
        R.object_iou(v, t, s, b["image_objects"], b["text_objects"], beta=0.7),
    )


def test_function_and_module_compute_the_same_loss_by_default():
    """One default per option: SoftCLIP's roi_tag_weight once differed (0 vs 1)."""
    from alignclip_plugins.losses.softclip_alignclip import (
        SoftClipAlignClipLoss,
        softclip_alignclip_loss,
    )

    b = batch64()
    v, t, s = b["image_features"], b["text_features"], b["logit_scale"]
    r, a, io, to = b["roi_features"], b["tag_features"], b["image_objects"], b["text_objects"]
    renamed = {"clip": "contrastive"}
    cases = [
        (SoftClipLoss(), F.softclip_loss(v, t, r, a, s), renamed),
        (GuidanceMixLoss(), F.guidance_mix_loss(v, t, r, a, s), {}),
        (LabelSmoothingLoss(), {"label_smoothing": F.label_smoothing_loss(v, t, s)}, {}),
        (ObjectIouLoss(), {"object_iou": F.object_iou_loss(v, t, s, io, to)}, {}),
        (SoftClipAlignClipLoss(), softclip_alignclip_loss(v, t, r, a, s, io, to), renamed),
    ]
    for module, functional, names in cases:
        got = module(**b, output_dict=True)
        assert set(got) == {f"{names.get(k, k)}_loss" for k in functional}, type(module)
        for k, value in functional.items():
            torch.testing.assert_close(got[f"{names.get(k, k)}_loss"], value)
    assert "roi_tag" in cases[0][1] and "roi_tag" in cases[-1][1]


def test_unused_inputs_and_logit_bias_are_ignored():
    b = batch64()
    base = SoftClipLoss()(**b)
    again = SoftClipLoss()(
        **b, logit_bias=torch.tensor(-3.0, dtype=torch.float64), dist_image_features=None, foo=1
    )
    torch.testing.assert_close(again, base)
    core = {k: b[k] for k in ("image_features", "text_features", "logit_scale")}
    torch.testing.assert_close(LabelSmoothingLoss()(**b), LabelSmoothingLoss()(**core))


@pytest.mark.parametrize(
    "loss,key,plugin",
    [
        (SoftClipLoss(), "roi_features", "softclip"),
        (GuidanceMixLoss(), "roi_features", "softclip"),
        (ObjectIouLoss(beta=0.5), "image_objects", "alignclip"),
        (SoftClipLoss(provider="my_rois"), "roi_features", "my_rois"),
    ],
)
def test_missing_input_names_key_and_plugin(loss, key, plugin):
    b = batch64()
    core = {k: b[k] for k in ("image_features", "text_features", "logit_scale")}
    with pytest.raises(MissingLossInputError) as err:
        loss(**core, output_dict=True)
    msg = str(err.value)
    assert repr(key) in msg and repr(plugin) in msg and repr(loss.loss_name) in msg


def test_object_iou_beta_zero_needs_no_objects():
    b = batch64()
    core = {k: b[k] for k in ("image_features", "text_features", "logit_scale")}
    torch.testing.assert_close(
        ObjectIouLoss(beta=0.0)(**core),
        R.clip(core["image_features"], core["text_features"], core["logit_scale"]),
    )


def test_invalid_options_fail_at_construction():
    with pytest.raises(ValueError):
        SoftClipLoss(beta=0.0)  # symmetric KL to a one-hot target
    with pytest.raises(ValueError):
        SoftClipLoss(v2l_target="R2X")
    with pytest.raises(ValueError):
        GuidanceMixLoss(gamma=-0.1)
    with pytest.raises(ValueError):
        ObjectIouLoss(beta=1.5)
    with pytest.raises(ValueError):
        LabelSmoothingLoss(alpha=2.0)


# --- --accum-freq: emulate upstream train_one_epoch's accumulation on a tiny model --------


class Tiny(nn.Module):
    """Linear towers with an extra per-sample output, like a plugin's ROI/tag features."""

    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.img = nn.Linear(6, 4, dtype=torch.float64)
        self.txt = nn.Linear(5, 4, dtype=torch.float64)
        self.roi = nn.Linear(3, 4, dtype=torch.float64)
        self.logit_scale = nn.Parameter(torch.tensor(2.0, dtype=torch.float64))
        for p in self.parameters():
            p.data = torch.randn(p.shape, generator=g, dtype=torch.float64)

    def forward(self, images, texts, rois):
        norm = nn.functional.normalize
        return {
            "image_features": norm(self.img(images), dim=-1),
            "text_features": norm(self.txt(texts), dim=-1),
            "roi_features": norm(self.roi(rois), dim=-1),
            "tag_features": norm(self.txt(texts[:, [4, 3, 2, 1, 0]]), dim=-1),
            "logit_scale": self.logit_scale.exp(),
        }


def accumulated_grads(model, loss, micro_batches):
    """Upstream's loop (open_clip_train 3.3.0 train.py, accum_freq > 1), verbatim in spirit."""
    accum = {}
    with torch.no_grad():
        for mb in micro_batches:
            out = model(*mb)
            out.pop("logit_scale")
            for k, v in out.items():
                accum.setdefault(k, []).append(v)
    model.zero_grad()
    for j, mb in enumerate(micro_batches):
        out = model(*mb)
        inputs_no_accum = {"logit_scale": out.pop("logit_scale")}
        inputs = {k: torch.cat(accum[k][:j] + [out[k]] + accum[k][j + 1 :]) for k in accum}
        losses = loss(**inputs, **inputs_no_accum, output_dict=True)
        sum(losses.values()).backward()
    return grads(model)


def grads(model):
    return {
        k: torch.zeros_like(p) if p.grad is None else p.grad.clone()
        for k, p in model.named_parameters()
    }


class UpstreamClip(ClipLoss):
    def forward(self, image_features, text_features, logit_scale, output_dict=False, **extra):
        return super().forward(image_features, text_features, logit_scale, output_dict=output_dict)


@pytest.mark.parametrize(
    "loss",
    [
        UpstreamClip(),
        LabelSmoothingLoss(),
        SoftClipLoss(chunk_rows=3),
        SoftClipLoss(target_grad=True, divergence="js"),
        GuidanceMixLoss(gamma=0.4, target_grad=True),
    ],
    ids=[
        "upstream-cliploss",
        "label-smoothing",
        "softclip",
        "softclip-target-grad-js",
        "guidance-mix",
    ],
)
def test_accumulation_equals_the_big_batch(loss):
    g = torch.Generator().manual_seed(1)
    data = [torch.randn(12, d, generator=g, dtype=torch.float64) for d in (6, 5, 3)]
    model = Tiny()
    model.zero_grad()
    sum(loss(**model(*data), output_dict=True).values()).backward()
    want = grads(model)
    assert want["img.weight"].abs().sum() > 0
    micro = [tuple(x[i : i + 4] for x in data) for i in (0, 4, 8)]
    got = accumulated_grads(model, loss, micro)
    # Every micro-batch pass differentiates the full loss with respect to logit_scale, so
    # upstream's loop gives it accum_freq times the big-batch gradient (ClipLoss included);
    # every other parameter gets exactly the big-batch gradient.
    want["logit_scale"] = want["logit_scale"] * len(micro)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=1e-9, atol=1e-12, msg=k)
