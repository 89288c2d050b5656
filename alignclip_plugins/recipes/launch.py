"""``alignclip-launch``: compose a recipe, prepare its data, train, evaluate; or print it all.

Examples::

    alignclip-launch experiment=softclip/table6 model=RN50 --dry-run
    alignclip-launch experiment=softclip/table6 model=tiny data=synthetic schedule=smoke \\
        bench=synthetic
    alignclip-launch experiment=softclip/table1 launch=slurm launch.partition=gpu
    alignclip-launch method=softclip model=ViT-B-16 data=cc12m schedule=comparison
    alignclip-launch --list

Every run goes to ``<logs_root>/<name>`` (name: table, row, model, data, seed) with its
resolved config in ``recipe.yaml``. A rerun skips trained runs and finished evaluations,
resumes interrupted ones (``--resume latest``), and reuses a run of the same experiment
made for another table.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_write_text
from alignclip_plugins.recipes import availability, launchers, prepare, runs
from alignclip_plugins.recipes.command import (
    EvalStep,
    RunCommands,
    checkpoint_path,
    eval_processes,
    eval_steps,
    launch_problems,
    python_executable,
    train_args,
)
from alignclip_plugins.recipes.conf import (
    Composer,
    RecipeConfigError,
    experiments,
    shipped_conf_dir,
)
from alignclip_plugins.recipes.datasets import TrainDataError, resolve_train_data
from alignclip_plugins.recipes.experiment import RunPlan, plan_runs

STATS_TASK = "dataset-stats"


@dataclass
class Job:
    """A planned run with what it will execute and what stands in its way."""

    plan: RunPlan
    run_dir: Path
    steps: list[prepare.Step]
    commands: RunCommands | None = None
    problems: list[str] = field(default_factory=list)
    reused: bool = False

    @property
    def cfg(self) -> dict:
        return self.plan.config


def _needs(plan: RunPlan) -> list[str]:
    """Data needs: the method's, and those of the bench roles the table evaluates."""
    cfg = plan.config
    if plan.kind == "stats":
        return ["objects", "vocabulary"]
    needs = ["train", *(cfg["method"].get("needs") or [])]
    for role in cfg.get("evals") or []:
        needs += ((cfg.get("bench") or {}).get(role) or {}).get("needs") or []
    return list(dict.fromkeys(needs))


def _run_dir(plan: RunPlan, indexes: dict[Path, dict[str, Path]]) -> tuple[Path, bool]:
    """The run's directory: its own name, or an existing run of the same experiment."""
    logs_root = Path(plan.config["logs_root"])
    own = logs_root / plan.name
    if (own / runs.RECIPE_FILE).exists():
        runs.check_same(own, plan.identity, plan.identity_hash)
        return own, False
    if logs_root not in indexes:
        indexes[logs_root] = runs.identity_index(logs_root)
    other = indexes[logs_root].get(plan.identity_hash)
    if other is not None:
        return other, True
    indexes[logs_root][plan.identity_hash] = own  # a later run of this launch shares it
    return own, False


def _commands(job: Job, must_exist: bool) -> RunCommands:
    cfg = job.cfg
    if job.plan.kind == "stats":
        return RunCommands(None, 1, None, None)
    train = resolve_train_data(cfg["data"], must_exist=must_exist)
    commands = train_args(cfg, job.run_dir.name, train)
    commands.evals = eval_steps(cfg, job.run_dir.name)
    return commands


def _problems(job: Job) -> list[str]:
    cfg = job.cfg
    found = []
    if job.plan.kind == "train":
        found += launch_problems(cfg)
        found += availability.method_problems(cfg["method"])
        steps = eval_steps(cfg, job.run_dir.name)
        found += [f"evaluation {s.role}: {s.unavailable}" for s in steps if s.unavailable]
        found += availability.eval_problems(s.task for s in steps if not s.unavailable)
        found += _description_problems(cfg, steps)
    for step in job.steps:
        if not prepare.is_done(step):
            found += prepare.problems(step)
    return list(dict.fromkeys(found))


def _description_problems(cfg: dict, steps) -> list[str]:
    """Description prototypes whose class descriptions are missing: found out before training,
    not after it (roles that say how to write them; the embedded data ships its own)."""
    found = []
    for step in steps:
        role = (cfg.get("bench") or {}).get(step.role) or {}
        argv = step.argv or []
        if "--descriptions" in argv and role.get("descriptions_help"):
            path = argv[argv.index("--descriptions") + 1]
            if not os.path.exists(path):
                found.append(
                    f"evaluation {step.role} with description prototypes needs {path}: "
                    f"{role['descriptions_help']}"
                )
    return found


def plan_jobs(args: argparse.Namespace) -> list[Job]:
    rows = [r.strip() for r in args.rows.split(",") if r.strip()] if args.rows else None
    with Composer(args.config_dir) as composer:
        plans = plan_runs(composer, args.overrides, rows)
    jobs = []
    indexes: dict[Path, dict[str, Path]] = {}
    for plan in plans:
        run_dir, reused = _run_dir(plan, indexes)
        steps = prepare.steps_for(plan.config["data"], _needs(plan))
        job = Job(plan, run_dir, steps, reused=reused)
        job.problems = _problems(job)
        jobs.append(job)
    return jobs


def _trained(job: Job) -> bool:
    if job.plan.kind == "stats":
        return False
    return checkpoint_path(job.cfg, job.run_dir.name).is_file()


def _eval_needed(job: Job, step) -> bool:
    checkpoint = checkpoint_path(job.cfg, job.run_dir.name)
    if step.during_training:
        epochs = int(job.cfg["schedule"]["epochs"])
        if runs.trainer_metric(job.run_dir, epochs, "imagenet-zeroshot-val-top1") is not None:
            return False
    return not runs.eval_done(step.result, checkpoint)


def _needed_evals(job: Job) -> list[EvalStep]:
    """The evaluations a launch still runs (available, not done by the trainer or before)."""
    return [s for s in job.commands.evals if not s.unavailable and _eval_needed(job, s)]


# ---- printing ------------------------------------------------------------------------


def print_jobs(jobs: list[Job], out=None) -> None:
    """The exact commands of every job (what a launch would run), with notes."""
    out = out or sys.stdout
    printed_steps: set[tuple[str, str]] = set()
    for job in jobs:
        cfg = job.cfg
        launch = cfg["launch"]
        python = python_executable(cfg)
        env = launchers.run_env(launch)
        print(f"\n# {job.plan.label}", file=out)
        where = f"# run dir: {job.run_dir}"
        if job.reused:
            where += " (same experiment as this existing run: reused)"
        print(where, file=out)
        for problem in job.problems:
            print(f"# NOT RUNNABLE: {problem}", file=out)
        for step in job.steps:
            key = (step.data, step.need)
            if key in printed_steps:
                continue
            printed_steps.add(key)
            if prepare.is_done(step):
                print(f"# prepare {step.describe()}: done ({step.creates})", file=out)
            elif prepare.problems(step):
                print(f"# prepare {step.describe()}: {step.help or 'cannot run'}", file=out)
            elif step.run:
                print(f"# prepare {step.describe()}", file=out)
                print(launchers.shell_line(prepare.command_line(step, python)), file=out)
            elif step.call:
                print(f"# prepare {step.describe()}: {step.call}(**{step.kwargs})", file=out)
            else:
                print(f"# prepare {step.describe()}: {step.help or 'missing'}", file=out)
        try:
            job.commands = _commands(job, must_exist=False)
        except (TrainDataError, ValueError) as e:
            print(f"# NOT RUNNABLE: {e}", file=out)
            continue
        commands = job.commands
        for note in commands.notes:
            print(f"# note: {note}", file=out)
        if job.plan.kind == "stats":
            print(f"# then: {STATS_TASK} from {cfg['data']['vocabulary']}", file=out)
            continue
        done = "# (trained) " if _trained(job) else ""
        resume = ["--resume", "latest"] if runs.has_checkpoint(job.run_dir) else []
        train = [*commands.train, *resume]
        if launch["kind"] == "slurm":
            script = _slurm_script(job, train)
            print(f"# sbatch script {job.run_dir / 'slurm.sbatch'}:", file=out)
            print("\n".join(f"#   {line}" for line in script.splitlines()), file=out)
            print(f"{done}sbatch {job.run_dir / 'slurm.sbatch'}", file=out)
            continue
        try:
            argv = launchers.train_argv(launch, python, train, job.run_dir.name)
        except launchers.LaunchError:
            continue  # listed among the problems above
        print(done + launchers.shell_line(argv, env), file=out)
        needed = _needed_evals(job)
        for step in commands.evals:
            if step.unavailable:
                continue
            if step.during_training:
                print(
                    f"# {step.role}: by the trainer when --imagenet-val is given, else by "
                    "alignclip eval:",
                    file=out,
                )
            if step not in needed:
                print("# (done) " + launchers.shell_line(step.argv, env), file=out)
        for process in eval_processes(needed):
            print(launchers.shell_line(process.argv, env), file=out)


# ---- running -------------------------------------------------------------------------


def _slurm_script(job: Job, train: list[str]) -> str:
    cfg = job.cfg
    launch = cfg["launch"]
    path = launchers.template_path(launch, shipped_conf_dir())
    python = python_executable(cfg)
    train_cmd = None if _trained(job) else [python, "-u", *launchers.TRAINER, *train]
    evals = [p.argv for p in eval_processes(_needed_evals(job))]
    return launchers.sbatch_script(
        launch,
        path.read_text(encoding="utf-8"),
        run_name=job.run_dir.name,
        run_dir=job.run_dir,
        table=job.plan.table,
        row=job.plan.row,
        train=train_cmd,
        evals=evals,
        env=launchers.run_env(launch),
        source=str(path),
    )


def _record(job: Job) -> None:
    cfg = job.cfg
    commands = job.commands
    record = {
        "name": job.run_dir.name,
        "table": job.plan.table,
        "row": job.plan.row,
        "kind": job.plan.kind,
        "model": job.plan.model,
        "data": job.plan.data,
        "seed": job.plan.seed,
        "identity_hash": job.plan.identity_hash,
        "identity": job.plan.identity,
        "launch": cfg["launch"]["kind"],
        "world_size": commands.world_size if commands else 1,
        "cwd": os.getcwd(),
        "commands": {
            "train": commands.train if commands else None,
            "evals": [s.argv for s in (commands.evals if commands else []) if s.argv],
        },
        "config": cfg,
    }
    runs.write_recipe(job.run_dir, record)


def _write_stats(job: Job) -> Path:
    from alignclip_plugins.evaluation.results import EvalResult, write_result

    vocabulary_path = Path(job.cfg["data"]["vocabulary"])
    vocabulary = json.loads(vocabulary_path.read_text(encoding="utf-8"))
    result = EvalResult(
        task=STATS_TASK,
        dataset=job.plan.data,
        checkpoint=None,
        model="",
        epoch=None,
        metrics={
            "pairs": float(vocabulary["num_captions"]),
            "parsed_objects": float(vocabulary["num_distinct_objects"]),
            "tail_objects": float(vocabulary["num_tail_objects"]),
        },
        options={
            "vocabulary": str(vocabulary_path),
            "objects_parser": job.cfg["data"].get("objects_parser"),
        },
    )
    return write_result(result, job.run_dir / "evals" / f"{STATS_TASK}-{job.plan.data}.json")


def run_job(
    job: Job,
    args: argparse.Namespace,
    done_steps: set,
    position: int | None = None,
    env: dict[str, str] | None = None,
) -> str:
    """Prepare, train and evaluate one job; returns a one-line status. ``position``: the
    progress bar's terminal line when several jobs run at once; ``env``: variables added to
    the training and evaluation processes' environment (over the launch config's)."""
    cfg = job.cfg
    launch = cfg["launch"]
    python = python_executable(cfg)
    for step in job.steps:
        key = (step.data, step.need, step.creates)
        if key in done_steps or prepare.is_done(step):
            done_steps.add(key)
            continue
        prepare.execute(step, python)
        done_steps.add(key)
    if args.prepare_only:
        return "prepared"
    job.commands = _commands(job, must_exist=True)
    runs.record_use(
        job.run_dir,
        {
            "table": job.plan.table,
            "row": job.plan.row,
            "model": job.plan.model,
            "data": job.plan.data,
            "seed": job.plan.seed,
            # how this table's bench roles are evaluated (alignclip tables reads them)
            "evals": {
                s.role: {
                    "task": s.task,
                    "dataset": s.dataset,
                    "during_training": s.during_training,
                }
                for s in job.commands.evals
                if not s.unavailable
            },
        },
    )
    if job.plan.kind == "stats":
        _record(job)
        path = _write_stats(job)
        return f"dataset statistics -> {path}"

    trained = _trained(job)
    if not trained:
        _record(job)
    resume = ["--resume", "latest"] if runs.has_checkpoint(job.run_dir) else []
    train = [*job.commands.train, *resume]
    if launch["kind"] == "slurm":
        return _submit_slurm(job, train)

    env = {**launchers.run_env(launch), **(env or {})}
    if not trained:
        argv = launchers.train_argv(launch, python, train, job.run_dir.name)
        samples = job.commands.train[job.commands.train.index("--train-num-samples") + 1]
        total = int(samples) * int(cfg["schedule"]["epochs"])
        launchers.run_process(
            argv,
            job.run_dir / "launch.log",
            env=env,
            desc=job.plan.label,
            total=total,
            position=position,
        )
        if not _trained(job):
            raise launchers.LaunchError(
                f"{job.plan.label}: training ended without "
                f"{checkpoint_path(cfg, job.run_dir.name)}; see {job.run_dir / 'out.log'}"
            )
    if args.no_eval:
        return "trained"
    if launch["kind"] == "torchrun" and int(launch.get("node_rank", 0)) != 0:
        return "trained (evaluations run on node 0)"
    needed = _needed_evals(job)
    for process in eval_processes(needed):  # one process for all alignclip eval tasks
        launchers.run_process(process.argv, job.run_dir / "launch.log", env=env, desc=process.desc)
    evaluated = len(needed)
    if not trained:
        return f"trained, {evaluated} evaluation(s)"
    return f"already trained, {evaluated} evaluation(s)" if evaluated else "already done"


def _submit_slurm(job: Job, train: list[str]) -> str:
    state = job.run_dir / "slurm-job.json"
    if state.exists():
        previous = json.loads(state.read_text()).get("job_id")
        if previous and launchers.job_active(previous):
            return f"SLURM job {previous} is still queued or running"
    if _trained(job) and not _needed_evals(job):
        return "trained and evaluated"
    script = _slurm_script(job, train)
    path = job.run_dir / "slurm.sbatch"
    atomic_write_text(path, script)
    if not job.cfg["launch"].get("submit", True):
        return f"wrote {path}; submit it with: sbatch {path}"
    job_id = launchers.submit(path)
    atomic_write_text(state, json.dumps({"job_id": job_id, "script": str(path)}) + "\n")
    return f"submitted SLURM job {job_id}"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="alignclip-launch",
        description="Compose a recipe (Hydra), prepare its data, train and evaluate its runs; "
        "or print the exact commands (--dry-run).",
        epilog="Overrides are Hydra's: group=option (model=RN50) or key=value "
        "(schedule.epochs=2, method.options.softclip_beta=0.5). docs/recipes.md has more.",
    )
    parser.add_argument(
        "overrides", nargs="*", help="Hydra overrides, e.g. experiment=softclip/table6"
    )
    parser.add_argument("--dry-run", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--rows", help="only these rows (comma-separated row names)")
    parser.add_argument(
        "--skip-unavailable",
        action="store_true",
        help="skip rows whose method or evaluation is not installed (default: refuse to start)",
    )
    parser.add_argument("--prepare-only", action="store_true", help="only prepare the data")
    parser.add_argument("--no-eval", action="store_true", help="train, do not evaluate")
    parser.add_argument(
        "--config-dir", help=f"user config dir (default ${'{'}ALIGNCLIP_RECIPES_CONF{'}'})"
    )
    parser.add_argument("--list", action="store_true", help="list the experiments and exit")
    return parser.parse_intermixed_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        if args.list:
            print("\n".join(experiments(args.config_dir)))
            return 0
        jobs = plan_jobs(args)
    except (RecipeConfigError, prepare.PrepareError, runs.RunConflict, ValueError) as e:
        print(f"alignclip-launch: {e}", file=sys.stderr)
        return 2
    dry_run = args.dry_run or any(j.cfg["launch"].get("dry_run") for j in jobs)
    if dry_run:
        try:
            print_jobs(jobs)
        except (launchers.LaunchError, ValueError) as e:
            print(f"alignclip-launch: {e}", file=sys.stderr)
            return 2
        return 0

    blocked = [j for j in jobs if j.problems]
    if blocked and not args.skip_unavailable:
        print("alignclip-launch: nothing was run; these rows cannot run here:", file=sys.stderr)
        for job in blocked:
            for problem in job.problems:
                print(f"  {job.plan.label}: {problem}", file=sys.stderr)
        print("(--skip-unavailable runs the other rows)", file=sys.stderr)
        return 2
    for job in blocked:
        print(f"skipped {job.plan.label}: {'; '.join(job.problems)}", file=sys.stderr)
    done_steps: set = set()
    failures = 0
    for job in jobs:
        if job.problems:
            continue
        try:
            status = run_job(job, args, done_steps)
        except (
            launchers.LaunchError,
            prepare.PrepareError,
            TrainDataError,
            runs.RunConflict,
            ValueError,
            OSError,
        ) as e:
            failures += 1
            print(f"FAILED {job.plan.label}: {e}", file=sys.stderr)
            continue
        print(f"{job.plan.label}: {status} ({job.run_dir})")
    if failures:
        print(f"alignclip-launch: {failures} run(s) failed; rerun to resume them", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
