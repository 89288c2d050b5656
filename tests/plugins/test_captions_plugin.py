"""``--plugins captions``: the option, its default per plugin, its stage's place, loading."""

import pytest
from open_clip_train.params import parse_args

from alignclip_plugins import host
from alignclip_plugins.captions.choice import CaptionChoiceStage
from alignclip_plugins.plugins import captions


def test_default_is_upstreams_all_unless_a_plugin_asks():
    assert parse_args(["--plugins", "captions"]).caption_choice == "all"
    assert parse_args(["--plugins", "captions", "--caption-choice", "random"]).caption_choice == (
        "random"
    )
    assert parse_args(["--plugins", "label_smoothing,captions"]).caption_choice == "all"
    aligned = parse_args(["--plugins", "alignclip"])  # requires captions, asks for random
    assert aligned.caption_choice == "random"
    assert host.host_for(aligned).names == ("alignclip", "captions")
    assert parse_args(["--plugins", "alignclip", "--caption-choice", "first"]).caption_choice == (
        "first"
    )
    assert captions.requested_choice(aligned) == ("random", "--caption-choice")


def test_its_stage_runs_first_and_only_on_training_data():
    args = parse_args(["--plugins", "label_smoothing,captions", "--caption-choice", "first"])
    stages = host.sample_stages(args, is_train=True, tokenizer=None)
    assert [type(s) for s in stages] == [CaptionChoiceStage]
    assert stages[0].choice == "first" and stages[0].seed == args.seed
    assert host.sample_stages(args, is_train=False, tokenizer=None) == []
    assert host.sample_stages(parse_args([]), is_train=True, tokenizer=None) == []  # upstream


def test_a_plugin_asking_for_an_unknown_choice_is_a_usage_error(tmp_path, monkeypatch, capsys):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "wants.py").write_text("REQUIRES = ('captions',)\nCAPTION_CHOICE = 'second'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(SystemExit):
        parse_args(["--plugins", "pkg.wants"])
    assert "plugin 'pkg.wants' asks for caption choice 'second'" in capsys.readouterr().err


def test_builtin_plugin_loads_without_its_entry_point(monkeypatch):
    """An editable install made before the plugin existed has no entry point for it."""
    monkeypatch.setattr(host, "installed_plugins", lambda: {})
    assert host.load_plugin("captions") is captions
    with pytest.raises(host.PluginError, match="unknown plugin 'no_such'"):
        host.load_plugin("no_such")
