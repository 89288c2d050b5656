"""Fixtures of the recipe tests: real data locations replaced by fixed, fake ones."""

import pytest

# Brace patterns and counts, so dry runs print exact commands without any data on disk.
FAKE_DATA = {
    "CC3M": ("/data/cc3m/{00000..00331}.tar", 2901344),
    "CC12M": ("/data/cc12m/{00000..01084}.tar", 10841279),
    "YFCC15M": ("/data/yfcc15m/{00000..01392}.tar", 13930140),
}


@pytest.fixture
def recipe_env(tmp_path, monkeypatch):
    """Logs, data and the user config dir in tmp_path; the papers' datasets as fake paths."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("ALIGNCLIP_LOGS", str(tmp_path / "runs"))
    monkeypatch.setenv("ALIGNCLIP_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("ALIGNCLIP_RECIPES_CONF", str(tmp_path / "conf"))
    for name in ("ALIGNCLIP_SYNTHETIC_ROOT", "ALIGNCLIP_EVAL_ROOT", "ALIGNCLIP_IMAGENET_ROOT"):
        monkeypatch.delenv(name, raising=False)
    for prefix, (pattern, count) in FAKE_DATA.items():
        monkeypatch.setenv(f"ALIGNCLIP_{prefix}_TRAIN", pattern)
        monkeypatch.setenv(f"ALIGNCLIP_{prefix}_NUM_SAMPLES", str(count))
        monkeypatch.delenv(f"ALIGNCLIP_{prefix}_ROOT", raising=False)
    return tmp_path


def _plugin_options(argv: list[str]):
    """The plugin options (``--plugins``' and their losses') that a training command line
    gives the trainer: what it sets, and the plugins' defaults for what it leaves out."""
    import argparse

    from alignclip_plugins import host

    if "open_clip_train.main" in argv:
        argv = argv[argv.index("open_clip_train.main") + 1 :]
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    parser.add_argument("--plugins", default="")
    host.add_arguments(parser, argv)
    options, _ = parser.parse_known_args(argv)  # upstream's options are not parsed here
    return options


@pytest.fixture
def plugin_options():
    """``plugin_options(argv) -> Namespace``: the plugin options of a training command."""
    return _plugin_options
