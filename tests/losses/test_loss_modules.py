"""The nn.Module losses: inputs, outputs, CLI options, registration, gradient accumulation."""

import argparse

import loss_reference as R
import pytest
import torch
from open_clip.loss import ClipLoss
from torch import nn

from alignclip_plugins.losses import label_smoothing, object_iou, softclip
from alignclip_plugins.losses.base import MissingLossInputError
from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.registry import LossRegistry
from alignclip_plugins.testing import make_batch

MODULES = [label_smoothing, softclip, object_iou]


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


def parser_with_all():
    p = argparse.ArgumentParser()
    for m in MODULES:
        m.add_arguments(p)
        m.add_arguments(p)  # shared options are added once
    p.add_argument("--local-loss", action="store_true")
    p.add_argument("--gather-with-grad", action="store_true")
    p.add_argument("--horovod", action="store_true")
    p.set_defaults(rank=0, world_size=1)
    return p


def test_cli_defaults_match_constructor_defaults():
    args = parser_with_all().parse_args([])
    assert args.ls_alpha == 0.2 and args.oiou_beta == object_iou.DEFAULT_BETA
    assert (args.softclip_beta, args.softclip_lambda, args.softclip_mu) == (0.3, 1.0, 1.0)
    assert (
        args.softclip_relation_enhanced
        and args.softclip_symmetric
        and not args.softclip_target_grad
    )
    assert (args.softclip_v2l_target, args.softclip_l2v_target, args.softclip_divergence) == (
        "R2R",
        "A2A",
        "kl",
    )
    assert args.softclip_roi_tag_weight == 1.0 and args.softclip_gamma == 0.5
    assert softclip.from_args(args).options == SoftClipLoss().options
    assert guidance_mix_options(args) == GuidanceMixLoss().options


def guidance_mix_options(args):
    return softclip.guidance_mix_from_args(args).options


def test_cli_options_reach_the_losses():
    argv = (
        "--ls-alpha 0.1 --softclip-beta 0.5 --softclip-lambda 2 --softclip-mu 0.5 "
        "--no-softclip-relation-enhanced --no-softclip-symmetric --softclip-v2l-target R2A "
        "--softclip-l2v-target A2R --softclip-divergence js --softclip-gamma 0.8 "
        "--softclip-target-grad --softclip-roi-tag-weight 0 --oiou-beta 0.25 "
        "--local-loss --gather-with-grad"
    ).split()
    args = parser_with_all().parse_args(argv)
    args.rank, args.world_size = 1, 4
    ls = label_smoothing.from_args(args)
    assert (
        ls.alpha == 0.1
        and ls.local_loss
        and ls.gather_with_grad
        and (ls.rank, ls.world_size) == (1, 4)
    )
    sc = softclip.from_args(args)
    assert sc.options == dict(
        beta=0.5,
        lam=2.0,
        mu=0.5,
        relation_enhanced=False,
        symmetric=False,
        v2l_target="R2A",
        l2v_target="A2R",
        divergence="js",
        target_grad=True,
        roi_tag_weight=0.0,
    )
    gm = softclip.guidance_mix_from_args(args)
    assert gm.options["gamma"] == 0.8 and gm.options["divergence"] == "js"
    oi = object_iou.from_args(args)
    assert oi.beta == 0.25 and oi.world_size == 4
    with pytest.raises(SystemExit):
        parser_with_all().parse_args(["--softclip-v2l-target", "I2I"])


def test_register_one_line_per_module():
    reg = LossRegistry()
    label_smoothing.register(reg, "label_smoothing")
    softclip.register(reg, "softclip")
    object_iou.register(reg, "alignclip")
    assert reg.names() == ["label-smoothing", "object-iou", "softclip", "softclip-guidance-mix"]
    assert label_smoothing.LOSS_NAME == "label-smoothing" and object_iou.LOSS_NAME == "object-iou"
    accum = {n: reg.get(n).supports_accum for n in reg.names()}
    assert accum == {
        "label-smoothing": True,
        "object-iou": False,
        "softclip": True,
        "softclip-guidance-mix": True,
    }
    p = argparse.ArgumentParser()
    for n in reg.names():  # what the host does: every registered loss adds its options
        reg.get(n).add_arguments(p)
    args = p.parse_args(["--softclip-beta", "0.2"])
    args.rank, args.world_size = 0, 1
    loss = reg.create("softclip-guidance-mix", args)
    assert isinstance(loss, GuidanceMixLoss) and loss.options["beta"] == 0.2
    assert reg.get("object-iou").plugin == "alignclip"
    with pytest.raises(MissingLossInputError, match="'alignclip'"):
        reg.create("object-iou", args)(**{k: v for k, v in batch64().items() if "objects" not in k})


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
