"""SynthConfig validation and the CLI's handling of bad options."""

import pytest

from alignclip_plugins.synthetic.cli import main
from alignclip_plugins.synthetic.config import SynthConfig


def test_defaults():
    config = SynthConfig()
    assert (config.seed, config.train_samples, config.shard_size, config.image_size) == (
        0,
        4096,
        512,
        64,
    )
    assert (config.zipf, config.mismatch, config.tail_fraction) == (1.0, 0.1, 0.3)
    assert (config.count_weights, config.mention, config.duplicates) == ((0.5, 0.3, 0.2), 0.9, 0.1)
    assert config.colour_mention == 0.5
    assert config.max_objects == 3
    assert (config.zeroshot_per_class, config.retrieval_samples) == (100, 512)
    assert "seed" not in config.options() and config.options()["shard_size"] == 512


def test_numbers_are_normalised_and_round_trip():
    config = SynthConfig(seed=3, zipf=1, mismatch=0, count_weights="1, 1")
    assert isinstance(config.zipf, float) and config.options()["zipf"] == 1.0
    assert config.count_weights == (1.0, 1.0) and config.options()["count_weights"] == [1.0, 1.0]
    assert SynthConfig.from_record(3, {**config.options(), "future": 1}) == config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shard_size", 0, "shard_size must be >= 1"),
        ("image_size", 16, "image_size must be between 24 and 1024"),
        ("train_samples", 0, "train_samples must be >= 1"),
        ("zipf", -1.0, "zipf must be >= 0"),
        ("mismatch", 1.5, r"mismatch must be in \[0, 1\]"),
        ("tail_fraction", -0.1, r"tail_fraction must be in \[0, 1\]"),
        ("zeroshot_per_class", 0, "zeroshot_per_class must be >= 1"),
        ("retrieval_samples", 0, "retrieval_samples must be >= 1"),
        ("seed", -1, "seed must be >= 0"),
        ("shard_size", 2.5, "shard_size must be an integer"),
        ("zipf", float("nan"), "zipf must be a finite number"),
        ("seed", True, "seed must be an integer"),
        ("count_weights", (0.5, -0.1), "count_weights must be 1 to 4 non-negative numbers"),
        ("count_weights", (0.2,) * 5, "count_weights must be 1 to 4 non-negative numbers"),
        ("count_weights", (), "count_weights must be 1 to 4 non-negative numbers"),
        ("count_weights", "0.5,x", "count_weights must be numbers"),
        ("mention", 1.2, r"mention must be in \[0, 1\]"),
        ("duplicates", 1.0, r"duplicates must be in \[0, 1\)"),
    ],
)
def test_invalid_options_are_rejected_clearly(field, value, message):
    with pytest.raises(ValueError, match=message):
        SynthConfig(**{field: value})


def test_cli_reports_bad_options_as_usage_errors(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--out", str(tmp_path / "d"), "--image-size", "10"])
    assert exit_info.value.code == 2
    assert "image_size must be between" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_cli_has_one_option_per_field_and_prints_the_data_statistics(tmp_path, capsys):
    from dataclasses import fields

    from alignclip_plugins.synthetic.cli import build_parser

    options = {a.dest for a in build_parser()._actions}
    assert {f.name for f in fields(SynthConfig)} <= options
    argv = ["--out", str(tmp_path / "d"), "--train-samples", "64", "--shard-size", "32"]
    argv += ["--zeroshot-per-class", "1", "--retrieval-samples", "8", "--count-weights", "1,1"]
    assert main([*argv, "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "training pairs sharing an object:" in out and "other samples per batch of 64" in out
    assert "mismatched pairs" in out and "near-duplicate scenes" in out and "tail classes" in out
