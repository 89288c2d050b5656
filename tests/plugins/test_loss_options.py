"""The plugins' loss options: defaults and ranges from the loss configs, checked while the
options are parsed (before a model or a run directory exists), and the loss factories."""

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest
from open_clip_train.params import parse_args

from alignclip_plugins.losses.base import MissingLossInputError
from alignclip_plugins.losses.config import ObjectIouConfig
from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.plugins import alignclip, label_smoothing, softclip
from alignclip_plugins.registry import LossRegistry
from alignclip_plugins.testing import make_batch

HERE = Path(__file__).resolve().parents[1]
PLUGINS = [label_smoothing, softclip, alignclip]


def batch64():
    import torch

    return make_batch(6, 5, extras=("roi_features", "tag_features"), objects=3,
                      dtype=torch.float64, seed=6)  # fmt: skip


def parser_with_all():
    p = argparse.ArgumentParser()
    for plugin in PLUGINS:  # each option is added once, by the plugin that owns it
        plugin.octrain_add_arguments(p)
    p.add_argument("--local-loss", action="store_true")
    p.add_argument("--gather-with-grad", action="store_true")
    p.add_argument("--horovod", action="store_true")
    p.set_defaults(rank=0, world_size=1)
    return p


def test_cli_defaults_match_constructor_defaults():
    args = parser_with_all().parse_args([])
    assert args.ls_alpha == 0.2 and args.oiou_beta == ObjectIouConfig().beta
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
    assert softclip.options.make_softclip_loss(args).options == SoftClipLoss().options
    assert guidance_mix_options(args) == GuidanceMixLoss().options


def guidance_mix_options(args):
    return softclip.options.make_guidance_mix_loss(args).options


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
    ls = label_smoothing.make_loss(args)
    assert (
        ls.config.alpha == 0.1
        and ls.local_loss
        and ls.gather_with_grad
        and (ls.rank, ls.world_size) == (1, 4)
    )
    sc = softclip.options.make_softclip_loss(args)
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
    gm = softclip.options.make_guidance_mix_loss(args)
    assert gm.options["gamma"] == 0.8 and gm.options["divergence"] == "js"
    oi = alignclip.options.make_loss(args)
    assert oi.config.beta == 0.25 and oi.world_size == 4
    with pytest.raises(SystemExit):
        parser_with_all().parse_args(["--softclip-v2l-target", "I2I"])


def test_plugins_register_their_losses():
    reg = LossRegistry()
    for plugin in PLUGINS:  # each into its own registry, as the host does
        own = LossRegistry(plugin=plugin.PLUGIN)
        plugin.octrain_register_losses(registry=own)
        reg.update(own)
    assert reg.names() == ["label-smoothing", "object-iou", "softclip", "softclip-guidance-mix"]
    assert (
        LabelSmoothingLoss.loss_name == "label-smoothing"
        and ObjectIouLoss.loss_name == "object-iou"
    )
    accum = {n: reg.get(n).supports_accum for n in reg.names()}
    assert accum == {
        "label-smoothing": True,
        "object-iou": False,
        "softclip": True,
        "softclip-guidance-mix": True,
    }
    args = parser_with_all().parse_args(["--softclip-beta", "0.2"])
    loss = reg.create("softclip-guidance-mix", args)
    assert isinstance(loss, GuidanceMixLoss) and loss.options["beta"] == 0.2
    assert reg.get("object-iou").plugin == "alignclip"
    with pytest.raises(MissingLossInputError, match="'alignclip'"):
        reg.create("object-iou", args)(**{k: v for k, v in batch64().items() if "objects" not in k})


# --- every option that takes a range is checked while the options are parsed --------

RANGED = [
    ("label_smoothing", "--ls-alpha", "[0, 1]", ["1.2", "-0.1", "nan"]),
    ("alignclip", "--oiou-beta", "[0, 1]", ["2", "-1"]),
    ("softclip", "--softclip-beta", "[0, 1]", ["-1", "1.5"]),
    ("softclip", "--softclip-lambda", "[0, inf)", ["-0.5", "inf"]),
    ("softclip", "--softclip-mu", "[0, inf)", ["-1"]),
    ("softclip", "--softclip-roi-tag-weight", "[0, inf)", ["-2"]),
    ("softclip", "--softclip-gamma", "[0, 1]", ["1.5"]),
    ("softclip_alignclip", "--softclip-alignclip-weight", "[0, 1]", ["-0.5", "2"]),
]


@pytest.mark.parametrize("plugin,flag,allowed,values", RANGED, ids=[r[1] for r in RANGED])
def test_out_of_range_option_is_a_usage_error(plugin, flag, allowed, values, tmp_path, capsys):
    for value in values:
        argv = ["--plugins", plugin, flag, value, "--logs", str(tmp_path), "--name", "run"]
        with pytest.raises(SystemExit) as err:
            parse_args(argv)
        assert err.value.code == 2
        assert (
            f"error: argument {flag}: must be in {allowed}, got {value}" in capsys.readouterr().err
        )
    with pytest.raises(SystemExit):
        parse_args(["--plugins", plugin, flag, "abc"])
    assert f"argument {flag}: must be a number in {allowed}, got 'abc'" in capsys.readouterr().err
    # the low end is allowed (at β = 0 or ω = 0 with the KL, not the symmetric KL)
    plain_kl = ["--no-softclip-symmetric"] if plugin.startswith("softclip") else []
    parse_args(["--plugins", plugin, flag, "0", *plain_kl])
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    "argv,message",
    [
        (["--plugins", "softclip", "--softclip-beta", "0"],
         "--loss softclip: the symmetric KL to a one-hot target (beta = 0) is infinite"),
        (["--plugins", "softclip", "--loss", "softclip-guidance-mix", "--softclip-beta", "0"],
         "--loss softclip-guidance-mix: the symmetric KL to a one-hot target"),
        (["--plugins", "softclip_alignclip", "--softclip-alignclip-weight", "0"],
         "--loss softclip-alignclip: the symmetric KL needs a target with no zero entry"),
        (["--plugins", "softclip_alignclip", "--softclip-divergence", "js"],
         "--loss softclip-alignclip supports --softclip-divergence kl without"),
    ],
)  # fmt: skip
def test_options_that_cannot_go_together_are_usage_errors(argv, message, capsys):
    with pytest.raises(SystemExit) as err:
        parse_args(argv)
    assert err.value.code == 2 and message in capsys.readouterr().err
    # the same values are fine where they are well defined
    parse_args([*argv[:2], "--softclip-beta", "0", "--no-softclip-symmetric"])


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--plugins", "alignclip", "--oiou-beta", "2"],
         "error: argument --oiou-beta: must be in [0, 1], got 2"),
        (["--plugins", "softclip", "--softclip-beta", "0"],
         "error: --loss softclip: the symmetric KL to a one-hot target (beta = 0) is infinite"),
    ],
)  # fmt: skip
def test_trainer_stops_before_the_run_directory(flags, message, tmp_path):
    """The trainer exits with a usage error, and a rerun with the same --name is not told
    that the experiment already exists."""
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"), "--model", model_arg(),
        "--train-data", str(tmp_path / "train-{000000..000003}.tar"), "--train-num-samples", "64",
        "--dataset-type", "webdataset", "--batch-size", "8", "--epochs", "1",
        "--logs", str(tmp_path / "logs"), "--name", "bad", "--report-to", "", *flags,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "logs" / "bad").exists()
