"""``alignclip demo``: the demo experiment's rows, its overrides, its dry run, and the
default demo end to end at a tiny budget."""

import json
import os
import shutil
from pathlib import Path

import pytest
import yaml

from alignclip_plugins import demo


def test_methods_are_the_demo_experiments_rows():
    rows = demo.experiment_rows()
    assert rows[: len(demo.DEFAULT_METHODS)] == list(demo.DEFAULT_METHODS)
    assert {"softclip_soft", "softclip_relation", "softclip_mean", "softclip_min"} <= set(rows)
    assert demo.parse_methods("all", rows) == rows
    assert demo.parse_methods(" clip , softclip_min,clip ", rows) == ["clip", "softclip_min"]
    with pytest.raises(ValueError, match="unknown method.*'simclr'"):
        demo.parse_methods("clip,simclr", rows)
    with pytest.raises(ValueError, match="unknown method"):
        demo.parse_methods(",", rows)


def test_overrides_carry_paths_budget_trainer_args_and_the_datasets_options(synth_data, tmp_path):
    args = demo.parse_args(
        ["--data", str(tmp_path / "a b"), "--out", str(tmp_path / "o"), "--seeds", "0,2",
         "--epochs", "3", "--batch-size", "32", "--", "--oiou-beta", "0.25"]
    )  # fmt: skip
    got = demo.overrides(args)
    assert got[0] == "experiment=demo" and "seeds=[0,2]" in got
    assert f'synthetic_root="{tmp_path / "a b"}"' in got  # quoted: spaces survive Hydra
    assert "schedule.epochs=3" in got and "schedule.global_batch=32" in got
    assert 'train_args=["--oiou-beta","0.25"]' in got
    assert not any(o.startswith("data.synth.") for o in got)  # absent data: the defaults
    # an existing dataset made with other options is used as it is
    data = demo.data_overrides(synth_data)
    assert "data.synth.train_samples=256" in data and "data.synth.shard_size=64" in data
    assert not any(o.startswith("data.synth.zipf") for o in data)


def test_dry_run_prints_every_command_with_the_demo_budget(tmp_path, capsys):
    out = tmp_path / "runs"
    assert demo.main(["--out", str(out), "--data", str(tmp_path / "d"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    train = [line for line in printed.splitlines() if "open_clip_train.main" in line]
    assert len(train) == len(demo.DEFAULT_METHODS)
    schedule = yaml.safe_load(
        (Path(__file__).parents[1] / "recipes/conf/schedule/demo.yaml").read_text()
    )
    for line in train:
        assert (
            "RN-Demo-64" in line
            and f"--epochs {schedule['epochs']}" in line
            and "--batch-size 64" in line
        )
    # each run's three evaluations in one process
    assert printed.count("alignclip_plugins eval zeroshot") == len(demo.DEFAULT_METHODS)
    assert printed.count(" --then zeroshot ") == len(demo.DEFAULT_METHODS)
    assert printed.count(" --then retrieval ") == len(demo.DEFAULT_METHODS)
    assert "--attributes" in printed and "--prototypes descriptions" in printed
    assert "--plugins softclip" in printed and "--plugins alignclip" in printed
    assert not out.exists()


@pytest.mark.slow
def test_the_default_demo_trains_every_method_then_reuses_the_runs(
    synth_data, tmp_path, capsys, monkeypatch
):
    """`tox -e demo` end to end at a tiny budget: every default method trains through
    open_clip_train.main, is evaluated and lands in one table with its Δ column and chart;
    a rerun trains and evaluates nothing."""
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)  # the demo prepares object and ROI sidecars inside it
    out = tmp_path / "demo"
    argv = ["--data", str(data), "--out", str(out), "--epochs", "1", "--batch-size", "32"]
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert demo.main([*argv, "--jobs", "2"]) == 0  # two trainings at once, one thread each
    assert "OMP_NUM_THREADS" not in os.environ  # set for the trainers only
    printed = capsys.readouterr().out
    table = (out / "demo-results.md").read_text()
    assert table.split("\n![")[0] in printed and "wall time" in printed
    for method in demo.DEFAULT_METHODS:
        assert f"| {method} |" in table and f"| {method} | missing" not in table
    assert "| Δ zero-shot top-1 vs clip | seeds |" in table and "colour top-1" in table
    assert (out / "demo-results.png").read_bytes()[:4] == b"\x89PNG"
    runs = sorted(p for p in out.iterdir() if (p / "recipe.yaml").is_file())
    assert len(runs) == len(demo.DEFAULT_METHODS)
    for run in runs:
        assert (run / "checkpoints" / "epoch_1.pt").is_file()
        # two jobs on this machine's cores: the trainer ran with its share of the threads
        threads = max(1, (os.cpu_count() or 1) // 2)
        assert f"OMP_NUM_THREADS={threads}" in (run / "launch.log").read_text()
        evals = {p.name for p in (run / "evals").glob("*.json")}
        assert evals == {
            "zeroshot-synthetic.json",
            "zeroshot-synthetic_descriptions.json",
            "retrieval-synthetic.json",
        }
        assert (
            "colour_top1"
            in json.loads((run / "evals" / "zeroshot-synthetic.json").read_text())["metrics"]
        )
    stamps = {run: (run / "launch.log").stat().st_mtime_ns for run in runs}
    assert demo.main(argv) == 0
    assert {run: (run / "launch.log").stat().st_mtime_ns for run in runs} == stamps
    assert (out / "demo-results.md").read_text() == table


def test_a_fresh_checkout_can_run_the_demo_nothing_is_blocked(tmp_path):
    """No data yet (tox -e demo on a fresh clone): every job is runnable; the generator's
    outputs (shards, descriptions) are made by the first preparation step."""
    import argparse

    from alignclip_plugins.recipes import launch

    args = demo.parse_args(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")])
    plan = argparse.Namespace(
        rows=",".join(args.methods), config_dir=None, overrides=demo.overrides(args)
    )
    jobs = launch.plan_jobs(plan)
    assert len(jobs) == len(demo.DEFAULT_METHODS)
    assert [p for j in jobs for p in j.problems] == []


def test_the_table_of_methods_without_clip_keeps_clip_for_the_delta_column(tmp_path):
    """`alignclip demo --methods label_smoothing` renders (CLIP a 'missing' row until it ran)."""
    rendered, _ = demo.render(tmp_path, ["label_smoothing"])
    rows = [
        line.split("|")[1].strip() for line in rendered.markdown.splitlines() if line[:2] == "| "
    ]
    assert "clip" in rows and "label_smoothing" in rows and "softclip" not in rows
    assert (tmp_path / "demo-results.md").is_file()


def test_data_of_an_earlier_format_is_refused_not_trained_on(synth_data, tmp_path, capfd):
    """A data directory generated by an earlier version (another FORMAT) is not silently
    reused: the generator refuses it, naming the difference and --overwrite."""
    from alignclip_plugins.synthetic.manifest import FORMAT, MANIFEST_FILE, OPTIONS_FILE

    data = tmp_path / "old"
    shutil.copytree(synth_data, data)
    for name in (MANIFEST_FILE, OPTIONS_FILE):
        if (data / name).is_file():
            record = json.loads((data / name).read_text())
            (data / name).write_text(json.dumps({**record, "format": FORMAT - 1}))
    argv = ["--data", str(data), "--out", str(tmp_path / "runs"), "--methods", "clip"]
    assert demo.main(argv) == 1
    err = capfd.readouterr().err
    assert f"format {FORMAT - 1} there vs {FORMAT} now" in err and "--overwrite" in err
    assert not list((tmp_path / "runs").glob("*/checkpoints/*.pt"))
