"""``alignclip demo``: hard CLIP and each plugin trained side by side on the embedded data.

The demo is the recipe experiment ``demo`` (``recipes/conf/experiment/demo.yaml``): its rows
are the methods (``recipes/conf/method/``), its model, data, budget and evaluations the
``demo`` configs of the model, schedule and bench groups. This command runs it with the
recipe launcher: it generates the embedded data if absent, prepares what each method needs
(object sidecars, ROI features), trains every method with ``python -m open_clip_train.main``,
evaluates it (``alignclip eval``) and prints the ``demo`` table of ``alignclip tables`` with
its bar chart. Finished runs and evaluations are reused on a rerun; an interrupted run
resumes from its last epoch. Trainings run ``--jobs`` at a time, each with its share of the
CPU threads: the demo's tiny models use one core far better than two (on 2 cores, two
one-thread trainings give about 1.7x the samples/s of one two-thread training).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

EXPERIMENT = "demo"
# what a plain `alignclip demo` (`tox -e demo`) trains: one row per method; `--methods all`
# adds SoftCLIP's ablation rows of the experiment
DEFAULT_METHODS = ("clip", "label_smoothing", "object_iou", "alignclip", "softclip")
# --<option> -> the schedule key it overrides (the values live in recipes/conf/schedule/demo.yaml)
BUDGET = {"epochs": int, "lr": float, "wd": float, "batch_size": int, "workers": int}


def _hydra_string(value: str) -> str:
    """``value`` as a quoted Hydra override value (paths and trainer flags as they are)."""
    return json.dumps(str(value))


def experiment_rows() -> list[str]:
    """The row names of the demo experiment, in its order."""
    from omegaconf import OmegaConf

    from alignclip_plugins.recipes.conf import shipped_conf_dir
    from alignclip_plugins.recipes.experiment import expand_rows

    raw = OmegaConf.load(shipped_conf_dir() / "experiment" / f"{EXPERIMENT}.yaml")
    return [row.name for row in expand_rows(OmegaConf.to_container(raw)["rows"])]


def parse_methods(text: str, known: list[str]) -> list[str]:
    """``--methods``: comma-separated row names of the experiment, or ``all``."""
    methods = list(dict.fromkeys(m.strip() for m in text.split(",") if m.strip()))
    if methods == ["all"]:
        return list(known)
    unknown = [m for m in methods if m not in known]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown or text!r}; known: {', '.join(known)}")
    return methods


def data_overrides(data: Path) -> list[str]:
    """``data.synth.*`` overrides for a dataset already in ``data`` that was generated with
    other options than the defaults (so the recipe finds its shards); none when absent."""
    from alignclip_plugins.synthetic import SynthConfig, SyntheticDataError, load_manifest

    try:
        manifest = load_manifest(data)
    except SyntheticDataError:
        return []  # generated (or resumed) with the defaults by the recipe
    recorded = SynthConfig.from_record(manifest["seed"], manifest["options"])
    default = SynthConfig()
    out = []
    for name, value in {"seed": recorded.seed, **recorded.options()}.items():
        if getattr(recorded, name) != getattr(default, name):
            shown = f"[{','.join(map(str, value))}]" if isinstance(value, list) else value
            out.append(f"data.synth.{name}={shown}")
    return out


def overrides(args: argparse.Namespace) -> list[str]:
    """The Hydra overrides of the demo experiment for these command-line options."""
    out = [
        f"experiment={EXPERIMENT}",
        f"logs_root={_hydra_string(args.out.resolve())}",
        f"synthetic_root={_hydra_string(args.data.resolve())}",
        *data_overrides(args.data),
        f"seeds=[{','.join(str(s) for s in args.seeds)}]",
    ]
    for name in BUDGET:
        value = getattr(args, name)
        if value is not None:
            key = "global_batch" if name == "batch_size" else name
            out.append(f"schedule.{key}={value}")
    if args.trainer_args:
        out.append(f"train_args=[{','.join(_hydra_string(a) for a in args.trainer_args)}]")
    return out


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="alignclip demo",
        description=__doc__.split("\n\n")[0],
        epilog="The budget's defaults are recipes/conf/schedule/demo.yaml's; "
        "`alignclip-launch experiment=demo --dry-run` prints every command.",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("data/synthetic"),
        help="the embedded data (generated there if absent; default data/synthetic)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("demo-runs"),
        help="runs, evaluations and the table (default demo-runs)",
    )
    parser.add_argument(
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help="comma-separated rows of the demo experiment, or 'all' (default: "
        f"{','.join(DEFAULT_METHODS)})",
    )
    parser.add_argument(
        "--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2 (default 0)"
    )
    for name, kind in BUDGET.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=kind,
            default=None,
            help=f"change the budget's {name} for every method",
        )
    parser.add_argument(
        "--jobs",
        type=int,
        default=None,
        help="trainings run at once, each with CPU cores / jobs threads unless OMP_NUM_THREADS "
        "is set (default: the CPU cores, at most 4)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument(
        "trainer_args", nargs=argparse.REMAINDER, help="after '--': passed to every run"
    )
    args = parser.parse_args(argv)
    if args.trainer_args[:1] == ["--"]:
        args.trainer_args = args.trainer_args[1:]
    try:
        args.methods = parse_methods(args.methods, experiment_rows())
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError as e:
        parser.error(str(e))
    if not args.seeds:
        parser.error("--seeds: give at least one seed")
    if args.jobs is None:
        args.jobs = min(4, os.cpu_count() or 1)
    elif args.jobs < 1:
        parser.error(f"--jobs: at least 1, got {args.jobs}")
    return args


def run_jobs(jobs: list, workers: int) -> list[str]:
    """Prepare every job's data (once, in order), then train and evaluate ``workers`` jobs at
    a time; returns the failures (empty when every job finished)."""
    from alignclip_plugins.recipes import launch

    failures_of = (
        launch.launchers.LaunchError,
        launch.prepare.PrepareError,
        launch.TrainDataError,
        launch.runs.RunConflict,
        OSError,
    )
    done_steps: set = set()
    try:
        for job in jobs:  # shared data: prepared by one process, before any training
            launch.run_job(job, argparse.Namespace(prepare_only=True, no_eval=False), done_steps)
    except failures_of as e:
        return [f"preparing {job.plan.label}: {e}"]
    options = argparse.Namespace(prepare_only=False, no_eval=False)
    env = None  # the trainers' and evaluations' threads, unless the user set them
    if workers > 1 and "OMP_NUM_THREADS" not in os.environ:
        env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // workers))}
    slots = list(range(workers))  # a progress-bar line per training running

    def one(job) -> str | None:
        slot = slots.pop(0)
        try:
            status = launch.run_job(
                job, options, done_steps, position=slot if workers > 1 else None, env=env
            )
        except failures_of as e:
            return f"{job.plan.label} failed: {e}"
        finally:
            slots.append(slot)
        print(f"{job.plan.row} seed {job.plan.seed}: {status}", file=sys.stderr, flush=True)
        return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return [f for f in pool.map(one, jobs) if f]


def render(out: Path, methods: list[str]):
    """The ``demo`` table of the runs under ``out``, restricted to ``methods`` (in the
    experiment's order), with its bar chart; written to ``out/demo-results.{md,png}``."""
    from alignclip_plugins.io.atomic import atomic_write_text
    from alignclip_plugins.tables.figures import bar_chart
    from alignclip_plugins.tables.markdown import render_table
    from alignclip_plugins.tables.results import ResultIndex
    from alignclip_plugins.tables.spec import load_specs

    spec = load_specs()[EXPERIMENT]
    # hard CLIP stays in: the Δ column is against it (a "missing" row when it has no runs)
    keep = {*methods, spec.versus}
    spec = replace(spec, rows=tuple(r for r in spec.rows if r.id in keep))
    rendered = render_table(spec, ResultIndex(out), script="alignclip demo")
    png = bar_chart(spec, rendered, out / "demo-results.png")
    text = rendered.markdown + (f"\n![{spec.title}]({png.name})\n" if png else "")
    atomic_write_text(out / "demo-results.md", text)
    return rendered, png


def main(argv: list[str]) -> int:
    from alignclip_plugins.recipes import launch

    args = parse_args(argv)
    start = time.time()
    plan = argparse.Namespace(
        rows=",".join(args.methods), config_dir=None, overrides=overrides(args)
    )
    try:
        jobs = launch.plan_jobs(plan)
    except (
        launch.RecipeConfigError,
        launch.prepare.PrepareError,
        launch.runs.RunConflict,
        ValueError,
    ) as e:
        print(f"alignclip demo: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        launch.print_jobs(jobs)
        return 0
    blocked = [f"{j.plan.label}: {p}" for j in jobs for p in j.problems]
    if blocked:
        print("alignclip demo: nothing was run:\n  " + "\n  ".join(blocked), file=sys.stderr)
        return 2
    failures = run_jobs(jobs, min(args.jobs, len(jobs)))
    if failures:
        for failure in failures:
            print(f"alignclip demo: {failure}", file=sys.stderr)
        print("(a rerun resumes them and reuses the finished runs)", file=sys.stderr)
        return 1
    rendered, png = render(args.out, args.methods)
    elapsed = time.time() - start
    print("\n" + rendered.markdown)
    if png is not None:
        print(f"bar chart: {png}")
    print(f"written to {args.out / 'demo-results.md'}; wall time {elapsed / 60:.1f} min")
    return 0
