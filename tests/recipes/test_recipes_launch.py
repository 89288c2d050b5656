"""Launching: refusing what is not installed, reuse / resume / conflicts, SLURM, statistics,
a run's evaluations in one process."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from alignclip_plugins.evaluation.cli import THEN, parse_parts
from alignclip_plugins.recipes import launch, launchers, runs
from alignclip_plugins.recipes.command import EvalStep, checkpoint_path, eval_processes
from alignclip_plugins.recipes.conf import Composer
from alignclip_plugins.recipes.experiment import plan_runs

# a small embedded dataset: generated in about a second
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


def user_config(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / "conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


GHOST = {
    "method/ghost.yaml": "name: ghost\nlabel: Ghost\nplugins: [ghost_plugin]\nloss: ghost\n"
    "options: {}\nneeds: []\neval_options: {}\n",
    "method/typo.yaml": "name: typo\nlabel: Typo\nplugins: [label_smoothing]\n"
    "loss: label-smoothing\noptions: {ls_alfa: 0.1}\nneeds: []\neval_options: {}\n",
    "experiment/mine/ghosts.yaml": "# @package _global_\ntable: mine/ghosts\n"
    "rows:\n  - {row: ghost, method: ghost}\n  - {row: typo, method: typo}\n"
    "  - {row: clip, method: clip}\nevals: [imagenet]\n",
}


def test_rows_whose_method_is_not_installed_stop_the_launch_before_anything_runs(
    recipe_env, capsys
):
    user_config(recipe_env, GHOST)
    assert launch.main(["experiment=mine/ghosts", *SMALL]) == 2
    err = capsys.readouterr().err
    assert "nothing was run" in err
    assert "ghost_plugin" in err and "unknown plugin" in err
    assert "option --ls-alfa is not defined by plugins label_smoothing" in err
    assert not (recipe_env / "runs").exists()
    assert not (recipe_env / "data").exists()

    # the dry run shows them as not runnable, and the rest as usual
    assert launch.main(["experiment=mine/ghosts", *SMALL, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.count("# NOT RUNNABLE") == 2 and "--plugins ghost_plugin --loss ghost" in out

    # --skip-unavailable runs the others (here: only their data preparation)
    code = launch.main(["experiment=mine/ghosts", *SMALL, "--skip-unavailable", "--prepare-only"])
    assert code == 0
    err = capsys.readouterr().err
    assert "skipped mine/ghosts · ghost" in err and "skipped mine/ghosts · typo" in err
    assert (recipe_env / "data" / "synthetic" / "manifest.json").is_file()


def _plan(*overrides, rows=None):
    with Composer() as composer:
        return plan_runs(composer, list(overrides), rows)


def test_reruns_resume_skip_and_refuse_a_different_run_under_the_same_name(recipe_env, capsys):
    args = ["experiment=softclip/table6", "model=RN50", "--rows", "softclip"]
    (plan,) = _plan("experiment=softclip/table6", "model=RN50", rows=["softclip"])
    run = recipe_env / "runs" / plan.name
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "epoch_3.pt").write_bytes(b"")
    runs.write_recipe(run, {"identity_hash": plan.identity_hash, "identity": plan.identity})
    launch.main([*args, "--dry-run"])
    out = capsys.readouterr().out
    assert "--resume latest" in out and "(trained)" not in out

    (run / "checkpoints" / "epoch_8.pt").write_bytes(b"")
    result = run / "evals" / "zeroshot-imagenet.json"
    result.parent.mkdir()
    result.write_text(json.dumps({"checkpoint": str(run / "checkpoints" / "epoch_8.pt")}))
    launch.main([*args, "--dry-run"])
    out = capsys.readouterr().out
    assert "# (trained) " in out and "# (done) " in out

    # another table asking for the same experiment finds this run
    launch.main(["experiment=softclip/table9", "--rows", "R2R-A2A", "--dry-run"])
    out = capsys.readouterr().out
    assert f"run dir: {run} (same experiment as this existing run: reused)" in out

    # the same name with another configuration is refused
    runs.write_recipe(run, {"identity_hash": "other", "identity": {"seed": 7}})
    assert launch.main([*args, "--dry-run"]) == 2
    assert "configured differently" in capsys.readouterr().err


def test_a_run_recorded_with_written_options_only_is_the_same_experiment(recipe_env):
    """Identities hold the effective value of every option a method names (nulls: the
    plugins' defaults); a run recorded with the written, non-null options only is still the
    same experiment, and a run whose written options differ is not."""
    (plan,) = _plan("experiment=alignclip/main", "model=RN50", "data=cc3m", rows=["object_iou"])
    options = plan.identity["method"]["options"]
    assert options["alignclip_domains"] == [1.0, 0.0, 0.0] and options["oiou_beta"] == 0.5
    run = recipe_env / "runs" / plan.name
    old = {**plan.identity, "method": {**plan.identity["method"],
                                       "options": {"alignclip_domains": "1,0,0"}}}  # fmt: skip
    runs.write_recipe(run, {"identity_hash": "recorded-before", "identity": old})
    runs.check_same(run, plan.identity, plan.identity_hash)  # no conflict
    other = {**old, "method": {**old["method"], "options": {"alignclip_domains": "0.5,0.5,0"}}}
    runs.write_recipe(run, {"identity_hash": "recorded-before", "identity": other})
    with pytest.raises(runs.RunConflict, match="configured differently"):
        runs.check_same(run, plan.identity, plan.identity_hash)


def test_slurm_scripts_from_the_template(recipe_env, capsys):
    assert (
        launch.main(
            [
                "experiment=softclip/table6",
                "model=RN50",
                "--rows",
                "softclip",
                "launch=slurm",
                "launch.nnodes=2",
                "launch.partition=gpu",
                "launch.setup=source /opt/venv/bin/activate",
                "+launch.env.NCCL_DEBUG=INFO",
                "--dry-run",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    script = "\n".join(line[4:] for line in out.splitlines() if line.startswith("#   "))
    assert "#SBATCH --nodes=2" in script and "#SBATCH --ntasks-per-node=8" in script
    assert "#SBATCH --gres=gpu:8" in script and "#SBATCH --partition=gpu" in script
    assert "source /opt/venv/bin/activate" in script and "export NCCL_DEBUG=INFO" in script
    srun = next(line for line in script.splitlines() if line.startswith("srun "))
    assert "open_clip_train.main" in srun and "--batch-size 128" in srun  # 2048 / 16 GPUs
    assert "--plugins softclip" in srun and "--local-loss" in srun
    assert "alignclip_plugins eval zeroshot" in script
    assert "sbatch runs" in out or "sbatch " + str(recipe_env) in out

    with pytest.raises(launchers.LaunchError, match=r"unknown placeholders \['nope'\]"):
        launchers.render_template("{{nope}} {{time}}", {"time": "1:00:00"})


def _fake_tool(bin_dir: Path, name: str, output: str) -> None:
    bin_dir.mkdir(exist_ok=True)
    path = bin_dir / name
    path.write_text(f"#!/bin/sh\necho '{output}'\n")
    path.chmod(path.stat().st_mode | stat.S_IEXEC)


def test_slurm_submission_and_rerun_while_queued(recipe_env, monkeypatch, capsys):
    bin_dir = recipe_env / "bin"
    _fake_tool(bin_dir, "sbatch", "Submitted batch job 4242")
    _fake_tool(bin_dir, "squeue", "RUNNING")
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    args = ["experiment=softclip/table6", "--rows", "clip", *SMALL, "launch=slurm"]
    assert launch.main(args) == 0
    out = capsys.readouterr().out
    assert "submitted SLURM job 4242" in out
    (run,) = (recipe_env / "runs").iterdir()
    assert json.loads((run / "slurm-job.json").read_text())["job_id"] == "4242"
    script = (run / "slurm.sbatch").read_text()
    assert "--model local-dir:" in script and "--train-num-samples 64" in script
    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    assert recipe["launch"] == "slurm" and recipe["config"]["model"]["name"] == "tiny"
    uses = runs.read_uses(run)
    assert uses[0]["table"] == "softclip/table6" and uses[0]["row"] == "clip"
    assert uses[0]["evals"]["imagenet"] == {
        "task": "zeroshot",
        "dataset": "synthetic",
        "during_training": False,
    }
    assert launch.main(args) == 0
    assert "SLURM job 4242 is still queued or running" in capsys.readouterr().out


def test_dataset_statistics_row_parses_objects_and_records_the_table_row(recipe_env, capsys):
    assert launch.main(["experiment=alignclip/supp_table1", *SMALL]) == 0
    (run,) = (recipe_env / "runs").iterdir()
    assert run.name == "alignclip-supp_table1__stats__synthetic"
    stats = json.loads((run / "evals" / "dataset-stats-synthetic.json").read_text())
    vocabulary = json.loads(
        (recipe_env / "data" / "synthetic" / "object-vocabulary-vocab.json").read_text()
    )
    assert stats["metrics"] == {
        "pairs": 64.0,
        "parsed_objects": float(vocabulary["num_distinct_objects"]),
        "tail_objects": float(vocabulary["num_tail_objects"]),
    }
    assert vocabulary["num_tail_objects"] == int(0.3 * vocabulary["num_distinct_objects"])


def test_launch_settings_that_cannot_work_are_refused_up_front(recipe_env, capsys):
    assert launch.main(["experiment=softclip/table6", "launch=torchrun", "launch.nproc=3"]) == 2
    err = capsys.readouterr().err
    assert "global batch 2048 does not split over 3 processes" in err
    assert launch.main(["experiment=softclip/table4", "launch.nproc=2"]) == 2
    assert "launch=local runs one process" in capsys.readouterr().err


# the demo's clip row on SMALL's data: three evaluations (zeroshot, zeroshot_desc, retrieval)
DEMO = ["experiment=demo", "--rows", "clip", *(o for o in SMALL if not o.startswith("bench="))]


def test_a_runs_evaluations_run_in_one_process_without_those_done(recipe_env, monkeypatch, capsys):
    args = launch.parse_args(DEMO)
    (job,) = launch.plan_jobs(args)
    checkpoint = checkpoint_path(job.cfg, job.run_dir.name)
    calls = []

    def run_process(argv, log_path, *, env=None, desc="", total=None, position=None):
        calls.append((list(argv), desc))
        if "open_clip_train.main" in argv:  # the training writes its last checkpoint
            checkpoint.parent.mkdir(parents=True, exist_ok=True)
            checkpoint.write_bytes(b"")

    monkeypatch.setattr(launchers, "run_process", run_process)
    assert launch.run_job(job, args, set()) == "trained, 3 evaluation(s)"
    zeroshot, desc, retrieval = job.commands.evals
    assert zeroshot.argv[1:4] == ["-m", "alignclip_plugins", "eval"]
    assert [c[1] for c in calls] == [job.plan.label, "eval zeroshot, zeroshot_desc, retrieval"]
    joined = calls[1][0]
    assert joined == [*zeroshot.argv, THEN, *desc.argv[4:], THEN, *retrieval.argv[4:]]
    parts = parse_parts(joined[4:])  # what alignclip eval makes of it
    assert [(a.task, a.dataset_name) for a in parts] == [
        ("zeroshot", "synthetic"), ("zeroshot", "synthetic_descriptions"),
        ("retrieval", "synthetic"),
    ]  # fmt: skip
    assert [a.prototypes for a in parts[:2]] == ["templates", "descriptions"]

    # a finished evaluation is left out, of the launch and of its dry run alike
    desc.result.parent.mkdir(parents=True, exist_ok=True)
    desc.result.write_text(json.dumps({"checkpoint": str(checkpoint)}))
    calls.clear()
    assert launch.run_job(job, args, set()) == "already trained, 2 evaluation(s)"
    assert calls == [([*zeroshot.argv, THEN, *retrieval.argv[4:]], "eval zeroshot, retrieval")]
    capsys.readouterr()
    launch.print_jobs([job])
    out = capsys.readouterr().out
    env = launchers.run_env(job.cfg["launch"])
    assert launchers.shell_line(calls[0][0], env) in out.splitlines()
    assert "# (done) " + launchers.shell_line(desc.argv, env) in out.splitlines()

    for step in (zeroshot, retrieval):
        step.result.write_text(json.dumps({"checkpoint": str(checkpoint)}))
    calls.clear()
    assert launch.run_job(job, args, set()) == "already done" and calls == []


def test_only_alignclip_eval_commands_of_one_interpreter_are_joined(tmp_path):
    def step(role: str, *argv: str) -> EvalStep:
        return EvalStep(role, "", "", list(argv), tmp_path / role)

    steps = [
        step("a", "py", "-m", "alignclip_plugins", "eval", "zeroshot", "--data", "x"),
        step("b", "py", "tool.py", "--data", "x"),
        step("c", "py2", "-m", "alignclip_plugins", "eval", "retrieval"),
        step("d", "py", "-m", "alignclip_plugins", "eval", "retrieval", "--data", "y"),
    ]
    processes = eval_processes(steps)
    assert [(p.desc, p.argv) for p in processes] == [
        ("eval a, d", [*steps[0].argv, THEN, "retrieval", "--data", "y"]),
        ("eval b", steps[1].argv),
        ("eval c", steps[2].argv),
    ]
    assert steps[0].argv[-1] == "x"  # the steps' own command lines are left as they were


def test_slurm_scripts_run_the_evaluations_in_one_process(recipe_env, capsys):
    assert launch.main([*DEMO, "launch=slurm", "--dry-run"]) == 0
    script = [line[4:] for line in capsys.readouterr().out.splitlines() if line[:4] == "#   "]
    (evals,) = [line for line in script if " alignclip_plugins eval " in line]
    assert evals.count(f" {THEN} ") == 2 and f" {THEN} retrieval " in evals
