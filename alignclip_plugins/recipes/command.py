"""The command lines of a run: ``open_clip_train.main`` for training, ``alignclip eval`` after.

Plugin options are written in the method config as ``name_with_underscores: value`` and
become ``--name-with-underscores value``; ``true`` / ``false`` become ``--name`` /
``--no-name`` (the plugins' boolean options are ``BooleanOptionalAction``), lists are
comma-joined, ``null`` leaves the option out (the plugin's default applies). A run's
evaluations run as one ``alignclip eval A ... --then B ...`` process (:func:`eval_processes`).
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignclip_plugins.io.shards import expand_globs
from alignclip_plugins.recipes.datasets import TrainData

CAPTIONS_PLUGIN = "captions"  # one caption per sample of multi-caption data (data.caption_choice)
EVAL_MODULE = ["-m", "alignclip_plugins", "eval"]  # after the interpreter: alignclip eval


@dataclass
class EvalStep:
    """One evaluation of a run: a bench role and how it is (or was) computed."""

    role: str
    task: str
    dataset: str
    argv: list[str] | None  # None: computed by the trainer (results.jsonl)
    result: Path  # the file alignclip eval writes
    during_training: bool = False
    unavailable: str | None = None  # why this role cannot be evaluated in this bench


@dataclass
class EvalProcess:
    """One evaluation process of a run: the steps it computes and its command line."""

    steps: list[EvalStep]
    argv: list[str]

    @property
    def desc(self) -> str:
        return "eval " + ", ".join(s.role for s in self.steps)


@dataclass
class RunCommands:
    """Everything a run executes, with notes where the command cannot be exact yet."""

    train: list[str] | None
    world_size: int
    per_device_batch: int | None
    warmup: int | None
    evals: list[EvalStep] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def python_executable(cfg: dict) -> str:
    return cfg["launch"].get("python") or sys.executable


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def option_args(options: dict | None) -> list[str]:
    """``{"softclip_beta": 0.3, "softclip_symmetric": False}`` -> the trainer arguments."""
    args: list[str] = []
    for name, value in (options or {}).items():
        if value is None:
            continue
        if value is True:
            args.append(flag(name))
        elif value is False:
            args.append(flag("no_" + name))
        elif isinstance(value, (list, tuple)):
            args += [flag(name), ",".join(str(v) for v in value)]
        else:
            args += [flag(name), str(value)]
    return args


def effective_options(plugins: Sequence[str], options: dict | None) -> dict:
    """What the trainer gets for a method's ``options``: each given value as the plugins parse
    it (``1,0,0`` and ``[1, 0, 0]`` alike), each null one the plugins' default.

    Values that stay null are left out; options the plugins do not define keep their value,
    and so does everything when the plugins cannot be loaded (the availability check reports
    it). Tuples become lists (the value is recorded as YAML).
    """
    from alignclip_plugins.host import PluginError, add_plugin_arguments, get_host

    options = dict(options or {})
    given = {k: v for k, v in options.items() if v is not None}
    if not plugins or not options:
        return given
    parser = argparse.ArgumentParser(add_help=False, allow_abbrev=False, exit_on_error=False)
    try:
        add_plugin_arguments(parser, get_host(tuple(plugins)))
        parsed, _ = parser.parse_known_args(option_args(options))
    except (PluginError, argparse.ArgumentError, ImportError):
        return given
    out = {}
    for name, value in options.items():
        value = getattr(parsed, name, value)
        if value is not None:  # a plugin's "not given" default, as a null option
            out[name] = list(value) if isinstance(value, tuple) else value
    return out


def world_size(cfg: dict) -> int:
    launch = cfg["launch"]
    return int(launch.get("nproc", 1)) * int(launch.get("nnodes", 1))


def launch_problems(cfg: dict) -> list[str]:
    """Launch settings that cannot work, found before anything runs."""
    world = world_size(cfg)
    global_batch = int(cfg["schedule"]["global_batch"])
    found = []
    if global_batch % world:
        found.append(
            f"global batch {global_batch} does not split over {world} processes "
            f"(launch.nproc x launch.nnodes); change schedule.global_batch or the launch"
        )
    if cfg["launch"]["kind"] == "local" and world != 1:
        found.append(
            "launch=local runs one process; use launch=torchrun (or launch=slurm) for "
            f"launch.nproc={cfg['launch']['nproc']} launch.nnodes={cfg['launch']['nnodes']}"
        )
    return found


def resolve_precision(cfg: dict) -> str:
    """``auto``: amp where the run has a GPU (torchrun / SLURM, or a local CUDA device)."""
    precision = str(cfg["schedule"]["precision"])
    if precision != "auto":
        return precision
    if cfg["launch"]["kind"] in ("torchrun", "slurm"):
        return "amp"
    import torch

    return "amp" if torch.cuda.is_available() else "fp32"


def steps_per_epoch(num_samples: int, global_batch: int, workers: int) -> int:
    """Optimizer steps per epoch exactly as open_clip_train counts them for webdataset."""
    batches = math.ceil(num_samples / global_batch)
    workers = max(1, workers)
    return math.ceil(batches / workers) * workers


def checkpoint_path(cfg: dict, name: str, epoch: int | None = None) -> Path:
    """``<logs>/<name>/checkpoints/epoch_<N>.pt`` (the final epoch by default)."""
    epoch = cfg["schedule"]["epochs"] if epoch is None else epoch
    return Path(cfg["logs_root"]) / name / "checkpoints" / f"epoch_{epoch}.pt"


def _imagenet_during_training(cfg: dict) -> list[str]:
    """``--imagenet-val`` (+ the method's options for it) when the trainer can evaluate it."""
    role = (cfg.get("bench") or {}).get("imagenet") or {}
    val = role.get("val")
    if not role.get("during_training") or not val or not os.path.isdir(val):
        return []
    extra = cfg["method"].get("imagenet_options") or {}
    # a file the method's zero-shot options need and that is absent: leave it to the
    # standalone evaluation, whose error names the file
    if any(isinstance(v, str) and "/" in v and not os.path.exists(v) for v in extra.values()):
        return []
    return [
        "--imagenet-val",
        str(val),
        "--zeroshot-frequency",
        str(cfg["schedule"]["zeroshot_frequency"]),
        *option_args(extra),
    ]


def train_args(cfg: dict, name: str, train: TrainData) -> RunCommands:
    """The ``open_clip_train.main`` arguments of a training run."""
    schedule, model, method = cfg["schedule"], cfg["model"], cfg["method"]
    world = world_size(cfg)
    global_batch = int(schedule["global_batch"])
    notes = [train.note] if train.note else []
    if global_batch % world:
        raise ValueError(
            f"global batch {global_batch} does not split over {world} processes "
            f"(launch.nproc x launch.nnodes); change schedule.global_batch or the launch"
        )
    per_device = global_batch // world
    num_samples = train.num_samples
    if num_samples is not None and schedule.get("max_samples"):
        num_samples = min(num_samples, int(schedule["max_samples"]))
    workers = int(schedule["workers"])
    warmup = None
    if num_samples is not None and num_samples < global_batch:
        # upstream drops a partial training batch and repeats the data until a batch fills:
        # with fewer samples than one batch it would wait forever
        raise ValueError(
            f"{num_samples} training samples are fewer than one global batch of {global_batch}; "
            "lower schedule.global_batch"
        )
    if num_samples is not None:
        total = steps_per_epoch(num_samples, global_batch, workers) * int(schedule["epochs"])
        warmup = math.ceil(float(schedule["warmup_fraction"]) * total)
    args = [
        "--model", str(model["arg"]),
        "--train-data", train.urls,
        *(["--train-num-samples", str(num_samples)] if num_samples is not None else []),
        "--dataset-type", "webdataset",
        "--batch-size", str(per_device),
        "--epochs", str(schedule["epochs"]),
        "--lr", str(schedule["lr"]),
        "--wd", str(schedule["wd"]),
        *(["--warmup", str(warmup)] if warmup is not None else []),
        "--precision", resolve_precision(cfg),
        "--workers", str(workers),
        "--seed", str(cfg["seed"]),
        "--logs", str(cfg["logs_root"]),
        "--name", name,
        "--save-frequency", str(schedule["save_frequency"]),
    ]  # fmt: skip
    if schedule.get("delete_previous_checkpoint", True):
        args.append("--delete-previous-checkpoint")
    for key in ("beta1", "beta2", "eps"):
        if schedule.get(key) is not None:
            args += [flag(key), str(schedule[key])]
    if world > 1:
        args += list(schedule.get("distributed_args") or [])
    if model.get("force_image_size"):
        args += ["--force-image-size", str(model["force_image_size"])]
    plugins = list(method.get("plugins") or [])
    caption_choice = cfg["data"].get("caption_choice")
    if caption_choice and CAPTIONS_PLUGIN not in plugins:
        plugins.append(CAPTIONS_PLUGIN)  # every method sees the same caption per sample
    if plugins:
        args += ["--plugins", ",".join(plugins)]
        if method.get("loss"):
            args += ["--loss", str(method["loss"])]
    args += option_args(method.get("options"))
    if caption_choice:
        args += ["--caption-choice", str(caption_choice)]
    args += _imagenet_during_training(cfg)
    args += [str(a) for a in schedule.get("extra") or []]
    args += [str(a) for a in cfg.get("train_args") or []]
    if warmup is None:
        notes.append("--train-num-samples and --warmup are computed once the data exists")
    return RunCommands(args, world, per_device, warmup, notes=notes)


def eval_steps(cfg: dict, name: str) -> list[EvalStep]:
    """The run's evaluations (the table's ``evals`` roles, resolved in ``bench``)."""
    from alignclip_plugins.evaluation.results import result_name

    bench = cfg.get("bench") or {}
    run_dir = Path(cfg["logs_root"]) / name
    checkpoint = checkpoint_path(cfg, name)
    python = python_executable(cfg)
    steps = []
    for role_name in cfg.get("evals") or []:
        role = bench.get(role_name)
        if role is None:
            raise ValueError(f"evals: no role {role_name!r} in bench (known: {sorted(bench)})")
        if role.get("unavailable"):
            steps.append(
                EvalStep(role_name, "", "", None, run_dir, unavailable=str(role["unavailable"]))
            )
            continue
        task, dataset = str(role["task"]), str(role["dataset"])
        argv = [
            python, *EVAL_MODULE, task,
            "--checkpoint", str(checkpoint),
            "--model", str(cfg["model"]["arg"]),
            "--data", expand_globs(str(role["data"])),
            "--dataset", str(role.get("source") or dataset),
            "--dataset-name", dataset,
        ]  # fmt: skip
        argv += [str(a) for a in bench.get("eval_args") or []]
        argv += [str(a) for a in role.get("args") or []]
        task_options = {}
        if role.get("method_options", True):  # false: every method evaluated alike
            task_options = dict((cfg["method"].get("eval_options") or {}).get(task) or {})
        if task_options.get("prototypes") in ("descriptions", "both") and role.get("descriptions"):
            task_options.setdefault("descriptions", role["descriptions"])
        argv += option_args(task_options)
        steps.append(
            EvalStep(
                role_name,
                task,
                dataset,
                argv,
                run_dir / "evals" / result_name(task, dataset),
                during_training=bool(role.get("during_training")),
            )
        )
    return steps


def eval_processes(steps: Sequence[EvalStep]) -> list[EvalProcess]:
    """The processes that compute ``steps`` (each with an ``argv``): the ``alignclip eval``
    commands of one interpreter joined into one (``PYTHON -m alignclip_plugins eval A ...
    --then B ...``: torch and open_clip imported once), any other command on its own; in the
    order of the steps' first appearance."""
    from alignclip_plugins.evaluation.cli import THEN

    head = len(EVAL_MODULE) + 1
    processes: list[EvalProcess] = []
    joined: dict[tuple[str, ...], EvalProcess] = {}
    for step in steps:
        argv = list(step.argv or [])
        if len(argv) <= head or argv[1:head] != EVAL_MODULE:
            processes.append(EvalProcess([step], argv))
            continue
        prefix = tuple(argv[:head])
        if prefix in joined:
            joined[prefix].steps.append(step)
            joined[prefix].argv += [THEN, *argv[head:]]
        else:
            joined[prefix] = EvalProcess([step], argv)
            processes.append(joined[prefix])
    return processes
