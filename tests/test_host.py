import pytest
import torch
from open_clip_train.params import parse_args

from alignclip_plugins import host


def test_parse_plugin_names():
    assert host.parse_plugin_names(" a, b,,a ") == ("a", "b")
    assert host.parse_plugin_names(None) == ()


def test_builtin_plugins_are_entry_points():
    assert "label_smoothing" in host.installed_plugins()


def test_unknown_plugin_fails_fast_listing_known(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--plugins", "no_such_plugin"])
    err = capsys.readouterr().err
    assert "unknown plugin 'no_such_plugin'" in err and "label_smoothing" in err


def test_no_plugins_adds_only_the_plugins_option():
    args = parse_args([])
    assert args.plugins == "" and not hasattr(args, "loss")
    assert host.host_for(args) is None


def test_third_party_plugin_found_through_entry_point(probe_plugin_path):
    assert "probe" in host.installed_plugins()
    args = parse_args(["--plugins", "probe", "--probe-weight", "0.25", "--probe-sidecars"])
    assert args.loss == "probe-clip" and args.probe_weight == 0.25 and args.probe_sidecars
    assert host.host_for(args).losses.get("probe-clip").plugin == "probe"


def test_configure_hook_errors_are_usage_errors(probe_plugin_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--plugins", "probe", "--probe-weight", "-1"])
    assert "--probe-weight must be >= 0" in capsys.readouterr().err


def test_dotted_module_plugin_and_accum_check(probe_plugin_path, capsys):
    args = parse_args(["--plugins", "probe_pkg.noaccum"])
    assert args.loss == "plain-clip"
    with pytest.raises(SystemExit):
        parse_args(["--plugins", "probe_pkg.noaccum", "--accum-freq", "2"])
    assert "does not support --accum-freq > 1" in capsys.readouterr().err


def test_default_loss_is_first_plugin_in_order(probe_plugin_path):
    assert parse_args(["--plugins", "probe,probe_pkg.noaccum"]).loss == "probe-clip"
    assert parse_args(["--plugins", "probe_pkg.noaccum,probe"]).loss == "plain-clip"
    args = parse_args(["--plugins", "probe_pkg.noaccum,probe", "--loss", "probe-clip"])
    assert args.loss == "probe-clip"


def test_required_plugins_are_activated_after_the_named_one(probe_plugin_path, capsys):
    args = parse_args(["--plugins", "probe_pkg.needs", "--probe-weight", "0.5"])
    assert args.loss == "needs-clip" and args.probe_weight == 0.5  # probe's option exists
    active = host.host_for(args)
    assert active.names == ("probe_pkg.needs", "probe")
    assert active.losses.get("probe-clip").plugin == "probe"
    with pytest.raises(SystemExit):
        parse_args(["--plugins", "probe_pkg.cycle_a"])
    assert "require each other in a cycle" in capsys.readouterr().err


def test_plugin_loss_cannot_combine_with_siglip(probe_plugin_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--plugins", "probe", "--siglip"])
    assert "cannot be combined with --siglip" in capsys.readouterr().err


def test_defaults_pass_through_without_plugins():
    args = parse_args([])
    default = object()
    assert host.batch_stages(args, is_train=True, default=default) is default
    assert host.sample_stages(args, is_train=True, tokenizer=None) == []
    assert host.forward_features(None, {}, {}, args) == {}
    assert host.evaluate(None, {}, 1, args, tokenizer=None) == {}
    assert host.zero_shot_classifier(args, default=len) is len
    assert not host.evaluates(args)
    assert host.create_loss(args, default=lambda a: "upstream") == "upstream"


def test_hooks_of_an_active_plugin(probe_plugin_path):
    import open_clip

    args = parse_args(["--plugins", "probe", "--model", "RN50"])
    args.rank, args.world_size = 0, 1  # set by init_distributed_device in a real run
    model = open_clip.create_model(
        "ViT-S-32", pretrained=None, force_image_size=32, force_context_length=8
    )
    host.attach_modules(model, args, device="cpu")
    assert isinstance(model.probe, torch.nn.Linear)
    assert "probe.weight" in model.state_dict()
    with pytest.raises(host.PluginError, match="already has one"):
        host.attach_modules(model, args, device="cpu")

    build = host.zero_shot_classifier(args, default=None)
    classifier = build(model, None, ["a", "b", "c"], ["{}"], device="cpu")
    assert classifier.shape == (model.text_projection.shape[1], 3)

    feats = torch.nn.functional.normalize(torch.randn(4, model.text_projection.shape[1]), dim=-1)
    batch = {"probe_len": torch.ones(4), "probe_side": torch.full((4,), 2.0)}
    extra = host.forward_features(model, batch, {"image_features": feats}, args)
    assert extra["probe_out"].shape == (4,)
    with pytest.raises(host.PluginError, match="probe_out"):
        host.forward_features(model, batch, {"image_features": feats, "probe_out": 0}, args)

    metrics = host.evaluate(model, {}, 3, args, tokenizer=None)
    assert set(metrics) == {"probe_bias", "epoch"} and metrics["epoch"] == 3
    assert host.evaluates(args)
    loss = host.create_loss(args, default=None)
    terms = loss(feats, feats, torch.tensor(10.0), probe_out=extra["probe_out"], output_dict=True)
    assert set(terms) == {"contrastive_loss", "probe_loss"}


WEBDATASET_PLUGINS = {
    "alignclip": "alignclip reads the caption object sets",
    "softclip": "softclip reads the ROI features and tags",
    "softclip_alignclip": "softclip reads the ROI features and tags",  # its first requirement
}


@pytest.mark.parametrize("plugin", sorted(WEBDATASET_PLUGINS))
@pytest.mark.parametrize(
    "data, given",
    [
        (["--dataset-type", "synthetic"], "--dataset-type synthetic (generated images, no shards)"),
        (["--dataset-type", "synthetic", "--train-data", "x/train-{0..3}.tar"],
         "--dataset-type synthetic (generated images, no shards)"),
        (["--dataset-type", "csv", "--train-data", "x/train.csv"], "--dataset-type csv"),
        (["--train-data", "x/train.tsv"],
         "--dataset-type auto (--train-data x/train.tsv is not a .tar pattern)"),
    ],
)  # fmt: skip
def test_plugins_reading_shards_refuse_other_dataset_types_while_parsing(
    plugin, data, given, capsys
):
    """With or without --train-data, before any option is acted on (no model, no run dir)."""
    with pytest.raises(SystemExit) as e:
        parse_args(["--plugins", plugin, *data, "--train-num-samples", "64"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert f"--plugins {plugin}: {given} is not supported: {WEBDATASET_PLUGINS[plugin]}" in err
    assert "use --dataset-type webdataset with --train-data 'DIR/train-{000000..000099}.tar'" in (
        err
    )


def test_label_smoothing_needs_no_shards():
    args = parse_args(["--plugins", "label_smoothing", "--dataset-type", "synthetic"])
    assert args.loss == "label-smoothing" and host.training_dataset_type(args) == "synthetic"


def test_training_dataset_type_is_upstreams_rule():
    def kind(*argv):
        return host.training_dataset_type(parse_args(list(argv)))

    assert kind() is None and kind("--val-data", "v.tar") is None  # nothing to train on
    assert kind("--train-data", "a/{0..3}.tar") == "webdataset"
    assert kind("--train-data", "a.csv") == kind("--train-data", "a.tsv") == "csv"
    assert kind("--train-data", "a.parquet") == "auto"  # upstream fails on it later
    assert kind("--train-data", "a.csv", "--dataset-type", "webdataset") == "webdataset"


def _module(tmp_path, monkeypatch, name: str, code: str) -> str:
    """A plugin module ``<package of this test>.name`` (a dotted path: no entry point)."""
    package = tmp_path / f"plugins_{tmp_path.name}"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").touch()
    (package / f"{name}.py").write_text("from alignclip_plugins.hookspecs import hookimpl\n" + code)
    monkeypatch.syspath_prepend(str(tmp_path))
    return f"{package.name}.{name}"


def test_a_marked_function_that_is_not_a_hook_stops_the_plugin_naming_the_hooks(
    tmp_path, monkeypatch
):
    """Hooks are named octrain_<what>: an unprefixed name (a helper marked by mistake, or a
    hook written for unprefixed names) is refused when the plugin is loaded."""
    name = _module(
        tmp_path, monkeypatch, "old_names", "@hookimpl\ndef configure(args):\n    pass\n"
    )
    with pytest.raises(host.PluginError) as e:
        host.PluginHost([name])
    message = str(e.value)
    assert message.startswith(f"plugin {name!r}: unknown hook 'configure'")
    assert "every hook's name starts with 'octrain_'" in message
    assert "octrain_configure" in message and "octrain_register_losses" in message
    helper = _module(
        tmp_path, monkeypatch, "helper", "def configure(args):\n    raise AssertionError\n"
    )
    host.PluginHost([helper]).hook.octrain_configure(args=None, stash=None)  # not a hook


def test_each_plugin_registers_into_its_own_registry_through_pluggy(tmp_path, monkeypatch):
    code = (
        "@hookimpl\ndef octrain_register_losses(registry):\n"
        "    registry.register('{loss}', dict)\n    registry.register('{name}-own', dict)\n"
    )
    a = _module(tmp_path, monkeypatch, "reg_a", code.format(loss="shared", name="a"))
    b = _module(tmp_path, monkeypatch, "reg_b", code.format(loss="other", name="b"))
    active = host.PluginHost([b, a])
    assert [(n, active.losses.get(n).plugin) for n in active.losses.in_order()] == [
        ("other", b), ("b-own", b), ("shared", a), ("a-own", a)
    ]  # fmt: skip
    assert active.default_loss == "other"
    c = _module(tmp_path, monkeypatch, "reg_c", code.format(loss="shared", name="c"))
    with pytest.raises(host.PluginError) as e:
        host.PluginHost([a, c])
    assert str(e.value) == (
        f"loss 'shared' is already registered (by plugin {a!r}); plugin {c!r} registers it again"
    )


def test_two_runs_in_one_process_share_the_cached_host_but_not_its_state(monkeypatch):
    """The loader report's totals live in each run's stash, not in the (cached) host."""
    from alignclip_plugins import loader_report

    monkeypatch.setattr(host, "_HOSTS", {})
    first, second = (parse_args(["--plugins", "label_smoothing"]) for _ in range(2))
    active = host.host_for(first)
    assert host.host_for(second) is active
    assert active.stash_for(first) is active.stash_for(first)
    assert active.stash_for(first) is not active.stash_for(second)
    batch = {"image": torch.zeros(2, 1), loader_report.FIELD: loader_report.LoaderBatch(2, 0, ())}
    host.batch_to_device(batch, first, device="cpu", input_dtype=None)
    assert loader_report.FIELD not in batch
    assert active.stash_for(second).get(loader_report.TOTALS) is None
    line = active.stash_for(first)[loader_report.TOTALS].report(1, first)
    assert line == "training loader, epoch 1: 2 samples, 0 of them repeats; none dropped"
    stashes = len(active._stashes)
    del first
    import gc

    gc.collect()
    assert len(active._stashes) == stashes - 1  # a run's state goes with its options
