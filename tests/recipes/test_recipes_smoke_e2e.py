"""A recipe row end to end: data preparation, the real trainer, evaluation, the table."""

from __future__ import annotations

import json

import pytest
import yaml

from alignclip_plugins.recipes import launch
from alignclip_plugins.tables import cli as tables_cli

SMALL = [
    "data=synthetic",
    "model=tiny",
    "schedule=smoke",
    "bench=synthetic",
    "data.synth.train_samples=64",
    "data.synth.shard_size=32",
    "data.synth.zeroshot_per_class=1",
    "data.synth.retrieval_samples=16",
]


@pytest.mark.slow
def test_table6_label_smoothing_row_trains_evaluates_and_renders(recipe_env, capsys, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    args = ["experiment=softclip/table6", "--rows", "label_smoothing", *SMALL]
    assert launch.main(args) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "softclip/table6 · label_smoothing · tiny · synthetic · seed 0: trained, 1 eval" in out

    run = recipe_env / "runs" / "softclip-table6__label_smoothing__tiny__synthetic__seed0"
    checkpoint = run / "checkpoints" / "epoch_1.pt"
    assert checkpoint.is_file()
    params = (run / "params.txt").read_text()
    assert "loss: label-smoothing" in params and "ls_alpha: 0.2" in params
    assert "train_num_samples: 64" in params and "batch_size: 32" in params
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["config"]["method"]["plugins"] == ["label_smoothing"]
    result = json.loads((run / "evals" / "zeroshot-synthetic.json").read_text())
    assert result["checkpoint"] == str(checkpoint.resolve()) and 0 <= result["metrics"]["top1"] <= 1

    # a rerun neither trains nor evaluates again
    stamp = checkpoint.stat().st_mtime_ns
    assert launch.main(args) == 0
    assert "label_smoothing · tiny · synthetic · seed 0: already done" in capsys.readouterr().out
    assert checkpoint.stat().st_mtime_ns == stamp

    # the table: the paper's number beside the measured one; the other rows missing
    logs = recipe_env / "runs"
    assert (
        tables_cli.main(
            ["softclip/table6", "--logs", str(logs), "--model", "tiny", "--data", "synthetic"]
        )
        == 0
    )
    table = capsys.readouterr().out
    measured = f"{100 * result['metrics']['top1']:.1f}"
    assert f"| + Label Smoothing | 18.3 → {measured} (" in table
    assert "| CLIP (Baseline) | 16.5 → missing | 10.7 → missing |" in table
    assert "`imagenet` was measured on `synthetic`" in table
    assert (logs / "tables" / "softclip-table6.md").read_text() == table.rstrip("\n") + "\n"
