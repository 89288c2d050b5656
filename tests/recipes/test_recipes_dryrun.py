"""``--dry-run`` of every recipe prints the trainer and evaluation commands the table needs.

Each recipe's commands are parsed back (shlex) and checked against what the paper's setting
and the method require: plugin, loss and its options, model, dataset shards, schedule
(epochs, weight decay, warm-up = 10% of upstream's step count, AMP, batch) and the table's
evaluation tasks.
"""

from __future__ import annotations

import contextlib
import io
import math
import shlex
import subprocess
from pathlib import Path

import pytest
from joined_evals import eval_lines

from alignclip_plugins.recipes import launch
from alignclip_plugins.recipes.conf import experiments

FAKE_DATA = {  # the same as conftest.recipe_env's
    "CC3M": ("/data/cc3m/{00000..00331}.tar", 2901344),
    "CC12M": ("/data/cc12m/{00000..01084}.tar", 10841279),
    "YFCC15M": ("/data/yfcc15m/{00000..01392}.tar", 13930140),
}
REPO = Path(__file__).resolve().parents[2]
DATA_PATTERN = {name.lower(): pattern for name, (pattern, _) in FAKE_DATA.items()}
DATA_COUNT = {name.lower(): count for name, (_, count) in FAKE_DATA.items()}
GLOBAL_BATCH = {"RN50": 2048, "ViT-B-32": 2048, "ViT-B-16": 1024}

SOFTCLIP = {
    "--plugins": "softclip",
    "--loss": "softclip",
    "--softclip-beta": "0.3",
    "--softclip-lambda": "1.0",
    "--softclip-mu": "1.0",
    "--softclip-relation-enhanced": True,
    "--softclip-symmetric": True,
    "--softclip-v2l-target": "R2R",
    "--softclip-l2v-target": "A2A",
    "--softclip-divergence": "kl",
    "--softclip-roi-encoder": "mhsa",
    "--softclip-max-rois": "10",
}
CLIP: dict = {"--plugins": None, "--loss": None}
LABEL_SMOOTHING = {"--plugins": "label_smoothing", "--loss": "label-smoothing", "--ls-alpha": "0.2"}
OBJECT_IOU = {"--plugins": "alignclip", "--loss": "object-iou", "--alignclip-domains": "1,0,0"}
ALIGNCLIP = {
    "--plugins": "alignclip",
    "--loss": "object-iou",
    "--alignclip-domains": "0.5,0.25,0.25",
}
SOFTCLIP_ALIGNCLIP = {
    "--plugins": "softclip_alignclip",
    "--loss": "softclip-alignclip",
    "--softclip-alignclip-weight": "0.5",
    "--softclip-beta": "0.3",
    "--alignclip-domains": "1,0,0",
}


def with_(base: dict, **flags) -> dict:
    return {**base, **{"--" + k.replace("_", "-"): v for k, v in flags.items()}}


NO = False  # a BooleanOptionalAction flag given as --no-...

# experiment -> (epochs, {row: expected trainer flags}, {eval task: [dataset names]}, runs)
EXPECTED = {
    "softclip/table1": (32, {"clip": CLIP, "softclip": SOFTCLIP}, {"zeroshot": ["imagenet"]}, 18),
    "softclip/table2": (
        32,
        {"clip": CLIP, "softclip": SOFTCLIP},
        {"zeroshot": ["pets", "dtd", "food101", "flowers102", "sun397", "caltech101"]},
        4,
    ),
    "softclip/table3": (
        32,
        {"clip": CLIP, "softclip": SOFTCLIP},
        {"instance-retrieval": ["roxford5k", "rparis6k"]},
        2,
    ),
    "softclip/table4": (
        32,
        {"clip": CLIP, "softclip": SOFTCLIP},
        {"copy-detection": ["copydays"]},
        2,
    ),
    "softclip/table5": (
        32,
        {"clip": CLIP, "softclip": SOFTCLIP},
        {"retrieval": ["flickr30k", "mscoco"]},
        4,
    ),
    "softclip/fig6": (
        32,
        {"clip": CLIP, "softclip": SOFTCLIP},
        {"logit-distribution": ["flickr30k"]},
        2,
    ),
    "softclip/table6": (
        8,
        {
            "clip": CLIP,
            "label_smoothing": LABEL_SMOOTHING,
            "soft": with_(SOFTCLIP, softclip_relation_enhanced=NO, softclip_symmetric=NO),
            "relation": with_(SOFTCLIP, softclip_symmetric=NO),
            "softclip": SOFTCLIP,
        },
        {"zeroshot": ["imagenet"]},
        10,
    ),
    "softclip/table9": (
        8,
        {
            "R2R-A2A": SOFTCLIP,
            "A2A-R2R": with_(SOFTCLIP, softclip_v2l_target="A2A", softclip_l2v_target="R2R"),
            "R2A-A2R": with_(SOFTCLIP, softclip_v2l_target="R2A", softclip_l2v_target="A2R"),
            "A2R-R2A": with_(SOFTCLIP, softclip_v2l_target="A2R", softclip_l2v_target="R2A"),
        },
        {"zeroshot": ["imagenet"]},
        4,
    ),
    "softclip/table10": (
        8,
        {
            "mean": with_(SOFTCLIP, softclip_roi_encoder="mean"),
            "max": with_(SOFTCLIP, softclip_roi_encoder="max"),
            "min": with_(SOFTCLIP, softclip_roi_encoder="min"),
            "mhsa": SOFTCLIP,
        },
        {"zeroshot": ["imagenet"]},
        8,
    ),
    "softclip/fig4a": (
        8,
        {
            f"gamma-{g}": with_(
                SOFTCLIP, loss="softclip-guidance-mix", softclip_gamma=f"{float(g)}"
            )
            for g in ("0", "0.25", "0.5", "0.75", "1")
        },
        {"zeroshot": ["imagenet"]},
        5,
    ),
    "softclip/fig4b": (
        8,
        {
            **{
                f"beta-re-{b:g}": with_(SOFTCLIP, softclip_beta=str(b))
                for b in (0.0001, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 1.0)
            },
            **{
                f"beta-no-re-{b:g}": with_(
                    SOFTCLIP, softclip_beta=str(b), softclip_relation_enhanced=NO
                )
                for b in (0.0001, 0.1, 0.2, 0.3, 0.5, 0.8, 0.9, 1.0)
            },
        },
        {"zeroshot": ["imagenet"]},
        16,
    ),
    "softclip/fig8": (
        32,
        {
            **{f"clip-{f}": CLIP for f in ("0.1667", "0.3333", "0.5", "0.6667", "0.8333", "1")},
            **{
                f"softclip-{f}": SOFTCLIP
                for f in ("0.1667", "0.3333", "0.5", "0.6667", "0.8333", "1")
            },
        },
        {"zeroshot": ["imagenet"]},
        12,
    ),
    "alignclip/supp_table2": (
        32,
        {"hard": CLIP, "label_smoothing": LABEL_SMOOTHING, "object_iou": OBJECT_IOU},
        {"zeroshot": ["imagenet"]},
        3,
    ),
    "alignclip/parsing": (
        32,
        {"pos": ALIGNCLIP, "llm": ALIGNCLIP, "vocab": ALIGNCLIP},
        {"zeroshot": ["imagenet"]},
        3,
    ),
    "alignclip/main": (
        32,
        {"clip": CLIP, "object_iou": OBJECT_IOU, "alignclip": ALIGNCLIP},
        {"zeroshot": ["imagenet"]},
        9,
    ),
    "alignclip/softclip_alignclip": (
        8,
        {
            "clip": CLIP,
            "softclip": SOFTCLIP,
            "object_iou": OBJECT_IOU,
            "softclip_alignclip": SOFTCLIP_ALIGNCLIP,
        },
        {"zeroshot": ["imagenet"]},
        4,
    ),
}


def dry_run(*args: str) -> dict[str, list[str]]:
    """The launcher's dry-run output per run: ``{label: lines}``, a joined evaluation command
    as one line per task (:func:`eval_lines`)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert launch.main([*args, "--dry-run"]) == 0
    blocks: dict[str, list[str]] = {}
    current = None
    for line in out.getvalue().splitlines():
        if line.startswith("# ") and " · " in line and not line.startswith("# run dir"):
            current = line[2:]
            blocks[current] = []
        elif current is not None and line:
            blocks[current] += eval_lines(line)
    return blocks


def parse_flags(argv: list[str]) -> dict:
    """``--name value`` / bare ``--flag`` -> dict (bare flags map to True)."""
    flags: dict = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg.startswith("--"):
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                flags[arg] = argv[i + 1]
                i += 2
                continue
            flags[arg] = True
        i += 1
    return flags


def command(lines: list[str], marker: str) -> list[str] | None:
    found = [
        shlex.split(line.removeprefix("# (trained) ").removeprefix("# (done) "))
        for line in lines
        if marker in line and not line.startswith("# NOT") and not line.startswith("# prepare")
    ]
    return found[0] if found else None


def upstream_warmup(num_samples: int, global_batch: int, workers: int, epochs: int) -> int:
    """10% of open_clip_train's optimizer steps (its webdataset step count, re-derived)."""
    batches = math.ceil(num_samples / global_batch)
    per_epoch = math.ceil(batches / workers) * workers
    return math.ceil(0.1 * per_epoch * epochs)


@pytest.mark.parametrize("experiment", sorted(EXPECTED))
def test_dry_run_prints_the_tables_commands(recipe_env, plugin_options, experiment):
    epochs, rows, evals, runs = EXPECTED[experiment]
    blocks = dry_run(f"experiment={experiment}")
    assert len(blocks) == runs
    seen_rows = set()
    for label, lines in blocks.items():
        table, row, model, data, seed = label.split(" · ")
        assert table == experiment and seed == "seed 0"
        seen_rows.add(row)
        train = command(lines, "open_clip_train.main")
        assert train is not None, lines
        flags = parse_flags(train[train.index("open_clip_train.main") + 1 :])
        # model, data, schedule
        assert flags["--model"] == model
        count = DATA_COUNT[data]
        if row.startswith(("clip-", "softclip-")) and experiment == "softclip/fig8":
            fraction = float(row.rsplit("-", 1)[1])
            assert int(flags["--train-num-samples"]) <= count
            assert int(flags["--train-num-samples"]) == pytest.approx(count * fraction, rel=0.01)
            count = int(flags["--train-num-samples"])
        else:
            assert flags["--train-data"] == DATA_PATTERN[data]
            assert flags["--train-num-samples"] == str(count)
        assert flags["--dataset-type"] == "webdataset"
        assert flags["--epochs"] == str(epochs)
        assert flags["--wd"] == "0.2"
        assert flags["--precision"] == "amp"
        assert flags["--batch-size"] == str(GLOBAL_BATCH[model])  # one local process
        assert flags["--warmup"] == str(upstream_warmup(count, GLOBAL_BATCH[model], 8, epochs))
        assert flags["--seed"] == "0"
        assert flags["--name"].startswith(experiment.replace("/", "-") + "__" + row + "__")
        # the method: plugin, loss and its options (given, or the plugin's default)
        options = plugin_options(train)
        for flag, value in rows[row].items():
            if value is None:
                assert flag not in flags, (row, flag)
            elif flag in ("--plugins", "--loss"):
                assert flags.get(flag) == value, (row, flag, flags.get(flag))
            else:
                wanted = [flag] if value is True else ["--no-" + flag[2:]] if value is NO else [
                    flag, value]  # fmt: skip
                dest = flag[2:].replace("-", "_")
                expected = getattr(plugin_options(["--plugins", flags["--plugins"], *wanted]), dest)
                assert getattr(options, dest) == expected, (row, flag, getattr(options, dest))
        # the table's evaluations
        for task, datasets in evals.items():
            names = []
            for line in lines:
                if " eval " + task + " " in line:
                    argv = shlex.split(line.removeprefix("# (done) "))
                    eflags = parse_flags(argv)
                    assert eflags["--model"] == model
                    assert eflags["--checkpoint"].endswith(f"checkpoints/epoch_{epochs}.pt")
                    names.append(eflags["--dataset-name"])
            assert names == datasets, (label, task, names)
    assert seen_rows == set(rows)


def test_every_experiment_has_a_script_and_expectations():
    names = experiments()
    # (mini/flickr8k's dry run: tests/recipes/test_recipes_mini.py; demo's: tests/test_demo.py)
    assert set(EXPECTED) | {"alignclip/supp_table1", "mini/flickr8k", "demo"} == set(names)
    for name in names:
        script = REPO / "recipes" / f"{name}.sh"
        assert script.is_file(), script
        text = script.read_text()
        assert f"recipe {name} " in text and "lib.sh" in text
        assert script.stat().st_mode & 0o111, f"{script} is not executable"


def test_dataset_statistics_recipe_prepares_objects_without_training(recipe_env):
    blocks = dry_run("experiment=alignclip/supp_table1")
    assert list(blocks) == [
        f"alignclip/supp_table1 · stats · {d}" for d in ("cc3m", "cc12m", "yfcc15m")
    ]
    for lines in blocks.values():
        assert not any("open_clip_train.main" in line for line in lines)
    text = "\n".join(blocks["alignclip/supp_table1 · stats · cc3m"])
    parse = command(text.splitlines(), " objects parse ")
    assert parse[parse.index("parse") + 1] == DATA_PATTERN["cc3m"]
    assert parse_flags(parse)["--parser"] == "pos"
    stats = command(text.splitlines(), " objects stats ")
    assert parse_flags(stats)["--name"] == "CC3M"


def test_alignclip_zero_shot_uses_description_prototypes(recipe_env):
    blocks = dry_run("experiment=alignclip/main", "data=cc3m")
    lines = blocks["alignclip/main · alignclip · RN50 · cc3m · seed 0"]
    flags = parse_flags(command(lines, " eval zeroshot "))
    assert flags["--prototypes"] == "descriptions"
    assert flags["--descriptions"].endswith("imagenet/descriptions.json")
    clip = parse_flags(command(blocks["alignclip/main · clip · RN50 · cc3m · seed 0"], " eval "))
    assert "--prototypes" not in clip
    # the llm parser of the parsing table needs an endpoint: not runnable, and said so
    parsing = dry_run("experiment=alignclip/parsing")
    llm = "\n".join(parsing["alignclip/parsing · llm · RN50 · cc3m · seed 0"])
    assert "NOT RUNNABLE" in llm and "ALIGNCLIP_LLM_URL" in llm


def test_torchrun_splits_the_global_batch_and_adds_distributed_options(recipe_env):
    blocks = dry_run(
        "experiment=softclip/table6", "model=ViT-B-32", "launch=torchrun", "launch.nproc=8"
    )
    lines = blocks["softclip/table6 · softclip · ViT-B-32 · cc3m · seed 0"]
    train = command(lines, "open_clip_train.main")
    assert train[1:3] == ["-m", "torch.distributed.run"]
    flags = parse_flags(train)
    assert flags["--nproc-per-node"] == "8" and flags["--nnodes"] == "1"
    assert flags["--batch-size"] == "256"  # 2048 over 8 GPUs
    assert flags["--local-loss"] is True and flags["--gather-with-grad"] is True
    blocks = dry_run(
        "experiment=softclip/table1", "model=ViT-B-16", "data=cc12m", "launch=torchrun"
    )
    flags = parse_flags(command(next(iter(blocks.values())), "open_clip_train.main"))
    assert flags["--batch-size"] == "128"  # 1024 over 8 GPUs


def test_smoke_overrides_give_a_few_cpu_steps_on_the_embedded_data(recipe_env):
    blocks = dry_run(
        "experiment=softclip/table6",
        "model=tiny",
        "data=synthetic",
        "schedule=smoke",
        "bench=synthetic",
        "--rows",
        "softclip",
    )
    ((label, lines),) = blocks.items()
    assert label == "softclip/table6 · softclip · tiny · synthetic · seed 0"
    text = "\n".join(lines)
    assert "alignclip_plugins synth --out" in text  # the data is generated on demand
    assert (
        "alignclip_plugins rois oracle" in text
    )  # and the ROI features made by the oracle detector
    flags = parse_flags(command(lines, "open_clip_train.main"))
    assert flags["--model"].startswith("local-dir:") and flags["--model"].endswith("ViT-Tiny-64")
    assert flags["--train-num-samples"] == "256" and flags["--batch-size"] == "32"
    assert flags["--epochs"] == "1" and flags["--workers"] == "1"
    ev = parse_flags(command(lines, " eval zeroshot "))
    assert ev["--dataset"] == "webdataset" and ev["--dataset-name"] == "synthetic"
    assert ev["--classnames"].endswith("classnames.txt") and ev["--tail"].endswith("classes.json")


def test_recipe_script_dry_run(recipe_env):
    """The shell script itself: SMOKE=1 switches scale; --dry-run skips rendering."""
    proc = subprocess.run(
        ["bash", str(REPO / "recipes" / "softclip" / "table4.sh"), "--dry-run"],
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "SMOKE": "1", "PYTHON": __import__("sys").executable},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "softclip/table4 · clip · tiny · synthetic · seed 0" in proc.stdout
    assert " eval copy-detection " in proc.stdout and "copydays_standin" in proc.stdout
    assert "### SoftCLIP Table 4" not in proc.stdout  # no table rendered on a dry run


def test_launch_print_is_a_dry_run(recipe_env, capsys):
    assert launch.main(["experiment=softclip/table4", "launch=print"]) == 0
    out = capsys.readouterr().out
    assert out.count("open_clip_train.main") == 2 and " eval copy-detection " in out
    assert not (recipe_env / "runs").exists()
