"""``recipes/mini/flickr8k.sh``: the commands of its dry run, its overrides, its smoke data."""

from __future__ import annotations

import contextlib
import io
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from joined_evals import eval_lines

from alignclip_plugins.recipes import launch
from alignclip_plugins.recipes.datasets import TrainDataError, resolve_train_data

REPO = Path(__file__).resolve().parents[2]
ROWS = ("clip", "label_smoothing", "object_iou", "alignclip", "softclip")


def dry_run(*args: str) -> dict[str, list[str]]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert launch.main(["experiment=mini/flickr8k", *args, "--dry-run"]) == 0
    blocks: dict[str, list[str]] = {}
    for line in out.getvalue().splitlines():
        if line.startswith("# mini/flickr8k · "):
            current = line[2:]
            blocks[current] = []
        elif line and blocks:
            blocks[current].append(line)
    return blocks


def flags(argv: list[str]) -> dict:
    out, i = {}, 0
    while i < len(argv):
        if argv[i].startswith("--"):
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                out[argv[i]] = argv[i + 1]
                i += 2
                continue
            out[argv[i]] = True
        i += 1
    return out


def command(lines: list[str], marker: str) -> list[str]:
    """The command with ``marker`` (a task of a joined evaluation line alone)."""
    (line,) = [x for y in lines if not y.startswith("#") for x in eval_lines(y) if marker in x]
    return shlex.split(line)


@pytest.fixture
def flickr8k(recipe_env, multicaption_data, monkeypatch) -> Path:
    """Flickr8k-layout shards (with their nouns.txt) where the recipe looks for them; their
    sizes.json claims Flickr8k's sizes (6,000 train, 1,091 val: dry runs train nothing)."""
    root = recipe_env / "data" / "flickr8k"
    shutil.copytree(multicaption_data["shards"], root)
    shutil.copy(multicaption_data["kaggle"] / "nouns.txt", root / "nouns.txt")
    sizes = {"train-000000.tar": 3000, "train-000001.tar": 3000, "val-000000.tar": 1091}
    (root / "sizes.json").write_text(json.dumps(sizes))
    return root


def test_dry_run_every_row_and_seed_with_the_same_budget(flickr8k, recipe_env, plugin_options):
    blocks = dry_run()
    assert len(blocks) == 15
    assert {label.split(" · ")[1] for label in blocks} == set(ROWS)
    row_flags, row_options = {}, {}
    for label, lines in blocks.items():
        _, row, model, data, seed = label.split(" · ")
        assert (model, data) == ("RN-Tiny-96", "flickr8k") and seed in {"seed 0", "seed 1",
                                                                          "seed 2"}  # fmt: skip
        train = command(lines, "open_clip_train.main")
        f = flags(train)
        assert f["--model"].startswith("local-dir:") and f["--model"].endswith("RN-Tiny-96")
        assert f["--train-data"] == f"{flickr8k}/train-{{000000..000001}}.tar"
        assert f["--train-num-samples"] == "6000"  # from sizes.json
        assert f["--warmup"] == "48"  # 10% of 10 epochs x 48 steps (47 batches, 2 workers)
        assert (f["--batch-size"], f["--epochs"], f["--lr"]) == ("128", "10", "0.0005")
        assert f["--caption-choice"] == "random" and "captions" in f["--plugins"].split(",")
        assert "--force-image-size" not in f
        row_flags[row], row_options[row] = f, plugin_options(train)
        for task in ("retrieval", "logit-distribution"):
            ev = flags(command(lines, f" eval {task} "))
            assert ev["--data"] == f"{flickr8k}/val-000000.tar"
            assert ev["--dataset"] == "webdataset" and ev["--dataset-name"] == "flickr8k"
            assert ev["--checkpoint"].endswith("checkpoints/epoch_10.pt")
    assert row_flags["clip"]["--plugins"] == "captions" and "--loss" not in row_flags["clip"]
    assert row_flags["label_smoothing"]["--loss"] == "label-smoothing"
    oiou, align, soft = row_flags["object_iou"], row_flags["alignclip"], row_flags["softclip"]
    assert oiou["--plugins"] == "alignclip,captions"
    assert row_options["object_iou"].alignclip_domains == (1.0, 0.0, 0.0)  # the default
    assert oiou["--alignclip-objects"].endswith("prepared/flickr8k/objects-vocab")
    assert align["--alignclip-domains"] == "0.5,0.5,0" and "--alignclip-descriptions" not in align
    assert soft["--loss"] == "softclip-guidance-mix" and soft["--softclip-gamma"] == "0.0"
    assert "--softclip-rois" not in soft
    first = "\n".join(blocks["mini/flickr8k · object_iou · RN-Tiny-96 · flickr8k · seed 0"])
    parse = flags(command(first.splitlines(), " objects parse "))
    assert parse["--parser"] == "vocab" and parse["--vocabulary"] == str(flickr8k / "nouns.txt")
    assert "train: done" in first or "# prepare flickr8k: train" not in first


def test_overrides_pick_model_resolution_schedule_seeds_and_descriptions(flickr8k, tmp_path):
    descriptions = tmp_path / "descriptions.json"
    descriptions.write_text('{"dog": ["a four-legged animal with fur"]}')
    blocks = dry_run(
        "model=RN50", "model.force_image_size=160", "schedule.epochs=3", "schedule.lr=0.001",
        "schedule.global_batch=64", "seeds=[4]", f"data.descriptions={descriptions}",
        "--rows", "alignclip",
    )  # fmt: skip
    ((label, lines),) = blocks.items()
    assert label == "mini/flickr8k · alignclip · RN50 · flickr8k · seed 4"
    f = flags(command(lines, "open_clip_train.main"))
    assert (f["--model"], f["--force-image-size"], f["--epochs"]) == ("RN50", "160", "3")
    assert (f["--lr"], f["--batch-size"], f["--seed"]) == ("0.001", "64", "4")
    assert f["--alignclip-domains"] == "0.5,0.25,0.25"
    assert f["--alignclip-descriptions"] == str(descriptions)
    assert flags(command(lines, " eval retrieval "))["--model"] == "RN50"


def test_shards_are_globbed_and_counted_without_sizes_json(flickr8k):
    (flickr8k / "sizes.json").unlink()
    data = {"train_data": f"{flickr8k}/train-*.tar", "count_samples": True, "label": "Flickr8k"}
    train = resolve_train_data(data)
    assert train.urls == f"{flickr8k}/train-{{000000..000001}}.tar" and train.num_samples == 16
    with pytest.raises(TrainDataError, match="no training shards match"):
        resolve_train_data({**data, "train_data": f"{flickr8k}/test-*.tar"})
    missing = resolve_train_data({**data, "train_data": f"{flickr8k}/test-*.tar"}, must_exist=False)
    assert missing.note and missing.num_samples is None


def test_fewer_samples_than_one_batch_is_refused(flickr8k):
    (flickr8k / "sizes.json").unlink()  # the 16 samples, counted
    text = "\n".join(next(iter(dry_run("--rows", "clip", "seeds=[0]").values())))
    assert "NOT RUNNABLE: 16 training samples are fewer than one global batch of 128" in text
    assert "schedule.global_batch" in text


def test_without_shards_it_says_how_to_get_them(recipe_env):
    text = "\n".join(next(iter(dry_run("--rows", "clip", "seeds=[0]").values())))
    assert "NOT RUNNABLE" in text and "alignclip captions convert" not in text
    assert "ALIGNCLIP_FLICKR8K_SOURCE" in text and "Kaggle / clip_benchmark" in text
    kaggle = recipe_env / "kaggle"
    kaggle.mkdir()
    text = "\n".join(
        next(iter(dry_run("--rows", "clip", "seeds=[0]", f"data.source={kaggle}").values()))
    )
    convert = command(text.splitlines(), " captions convert ")
    assert convert[convert.index("convert") + 1] == str(kaggle)
    assert flags(convert)["--val-size"] == "1000" and flags(convert)["--image-size"] == "96"


def run_script(*args: str, smoke: bool = False) -> str:
    env = {**os.environ, "PYTHON": sys.executable, "SMOKE": "1" if smoke else "0"}
    proc = subprocess.run(
        ["bash", str(REPO / "recipes" / "mini" / "flickr8k.sh"), *args],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_script_dry_run_prints_every_command_and_the_tables(flickr8k):
    out = run_script("--dry-run", "model=RN50")
    assert out.count("open_clip_train.main") == 15 and out.count(" eval retrieval ") == 15
    assert "# then: " in out and " tables mini/flickr8k mini/flickr8k_logits " in out
    assert out.rstrip().endswith("--model RN50")  # the tables look the runs up by model
    smoke = run_script("--dry-run", smoke=True)
    assert "kaggle_captions_standin" in smoke and " captions convert " in smoke
    assert "mini/flickr8k · softclip · tiny · flickr8k_smoke · seed 1" in smoke
    assert smoke.count("open_clip_train.main") == 10
    assert smoke.rstrip().endswith("--model tiny --data flickr8k_smoke")


@pytest.mark.slow
def test_smoke_data_row_end_to_end(recipe_env, capsys, monkeypatch):
    """The smoke's own data (rendered Kaggle folder, converted, parsed) through one row."""
    from alignclip_plugins.tables import cli as tables_cli

    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    small = ["model=tiny", "data=flickr8k_smoke", "schedule=smoke", "seeds=[0]",
             "data.standin.images=64", "--rows", "alignclip"]  # fmt: skip
    assert launch.main(["experiment=mini/flickr8k", *small]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "alignclip · tiny · flickr8k_smoke · seed 0: trained, 2 evaluation(s)" in out
    run = recipe_env / "runs" / "mini-flickr8k__alignclip__tiny__flickr8k_smoke__seed0"
    log = (run / "out.log").read_text()
    assert "captions, epoch 0 (choice random): 32 samples: 32 with 5 captions" in log
    assert (run / "evals" / "retrieval-flickr8k.json").is_file()
    logs = str(recipe_env / "runs")
    args = ["mini/flickr8k", "--logs", logs, "--model", "tiny", "--data", "flickr8k_smoke"]
    assert tables_cli.main(args) == 0
    table = capsys.readouterr().out
    assert "| AlignCLIP | " in table and "| CLIP | missing |" in table
