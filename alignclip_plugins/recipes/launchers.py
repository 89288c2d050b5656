"""How a run's commands are executed: locally, with torchrun, or as a SLURM batch job.

``local`` runs ``python -m open_clip_train.main ...``; ``torchrun`` prefixes it with
``torchrun --nproc-per-node N --nnodes M --rdzv-...``; ``slurm`` renders a batch script from a
template (``{{name}}`` placeholders, every one must be known) and submits it with ``sbatch``.
Evaluations run after training in the same way on one process (inside the job for SLURM).
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from collections.abc import Sequence
from pathlib import Path

from tqdm import tqdm

TRAINER = ["-m", "open_clip_train.main"]
_PROGRESS = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+)")
_PLACEHOLDER = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_SUBMITTED = re.compile(r"Submitted batch job (\d+)")


class LaunchError(RuntimeError):
    """A command that failed, or a launch that cannot be set up."""


def shell_line(argv: Sequence[str], env: dict | None = None) -> str:
    """The exact shell command line of ``argv`` (with ``env`` assignments in front)."""
    prefix = [f"{k}={shlex.quote(str(v))}" for k, v in (env or {}).items()]
    return " ".join([*prefix, shlex.join([str(a) for a in argv])])


def train_argv(launch: dict, python: str, args: Sequence[str], run_name: str) -> list[str]:
    """The full training command for a local or torchrun launch."""
    kind = launch["kind"]
    if kind == "torchrun":
        return [
            python, "-m", "torch.distributed.run",
            "--nproc-per-node", str(launch["nproc"]),
            "--nnodes", str(launch["nnodes"]),
            "--rdzv-backend", str(launch["rdzv_backend"]),
            "--rdzv-endpoint", str(launch["rdzv_endpoint"]),
            "--rdzv-id", run_name,
            *TRAINER, *args,
        ]  # fmt: skip
    if kind in ("local", "slurm"):
        if kind == "local" and int(launch.get("nproc", 1)) * int(launch.get("nnodes", 1)) != 1:
            raise LaunchError(
                "launch=local runs one process; use launch=torchrun (or launch=slurm) for "
                f"nproc={launch.get('nproc')} nnodes={launch.get('nnodes')}"
            )
        unbuffered = ["-u"] if kind == "slurm" else []  # srun output reaches the log live
        return [python, *unbuffered, *TRAINER, *args]
    raise LaunchError(f"launch.kind must be local, torchrun or slurm, got {kind!r}")


def run_env(launch: dict) -> dict[str, str]:
    return {str(k): str(v) for k, v in (launch.get("env") or {}).items()}


def run_process(
    argv: Sequence[str],
    log_path: Path,
    *,
    env: dict[str, str] | None = None,
    desc: str = "",
    total: int | None = None,
    position: int | None = None,
) -> None:
    """Run ``argv``, appending its output to ``log_path``; a progress bar over ``total`` samples
    follows the trainer's ``Train Epoch`` lines (on terminal line ``position`` when several
    processes run at once). Raises LaunchError (with the log's tail)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    full_env = {**os.environ, **(env or {})}
    bar = tqdm(
        total=total,
        desc=desc,
        unit="sample",
        unit_scale=True,
        disable=total is None,
        position=position,
        leave=position is None,
    )
    with (
        open(log_path, "a", encoding="utf-8") as log,
        subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=full_env,
        ) as proc,
    ):
        log.write(f"$ {shell_line(argv, env)}\n")
        for line in proc.stdout:
            log.write(line)
            m = _PROGRESS.search(line)
            if m and total:
                epoch, seen, per_epoch = map(int, m.groups())
                bar.n = min(total, epoch * per_epoch + seen)
                bar.refresh()
    bar.close()
    if proc.returncode != 0:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-25:]
        raise LaunchError(
            f"{desc or argv[0]} failed (exit {proc.returncode}); log: {log_path}\n"
            + "\n".join(lines)
        )


# ---- SLURM ---------------------------------------------------------------------------


def render_template(template: str, values: dict[str, str], source: str = "template") -> str:
    """Replace ``{{name}}`` placeholders; an unknown placeholder is an error naming it."""
    unknown = sorted({m.group(1) for m in _PLACEHOLDER.finditer(template)} - set(values))
    if unknown:
        raise LaunchError(
            f"{source}: unknown placeholders {unknown}; known: {', '.join(sorted(values))}"
        )
    return _PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), template)


def template_path(launch: dict, conf_dir: Path) -> Path:
    path = Path(str(launch["template"])).expanduser()
    if not path.is_absolute() and not path.exists():
        path = conf_dir / "launch" / path
    if not path.is_file():
        raise LaunchError(f"launch.template: no SLURM template at {path}")
    return path


def sbatch_script(
    launch: dict,
    template: str,
    *,
    run_name: str,
    run_dir: Path,
    table: str,
    row: str,
    train: Sequence[str] | None,
    evals: Sequence[Sequence[str]],
    env: dict[str, str],
    source: str = "template",
) -> str:
    """The batch script of one run."""
    options = []
    for key in ("partition", "account", "qos"):
        if launch.get(key):
            options.append(f"#SBATCH --{key}={launch[key]}")
    options += [f"#SBATCH {a}" for a in launch.get("sbatch_args") or []]
    values = {
        "job_name": run_name[:120],
        "run_dir": str(run_dir.resolve()),
        "table": table,
        "row": row,
        "nnodes": str(launch["nnodes"]),
        "nproc": str(launch["nproc"]),
        "cpus_per_task": str(launch["cpus_per_task"]),
        "time": str(launch["time"]),
        "sbatch_options": "\n".join(options),
        "setup": str(launch.get("setup") or ""),
        "exports": "\n".join(f"export {k}={shlex.quote(v)}" for k, v in env.items()),
        "master_port": str(launch["master_port"]),
        "train_command": shlex.join(list(train)) if train else "true  # already trained",
        "eval_commands": "\n".join(shlex.join(list(e)) for e in evals) or "true",
    }
    return render_template(template, values, source)


def submit(script: Path) -> str:
    """``sbatch SCRIPT``; returns the job id."""
    try:
        proc = subprocess.run(["sbatch", str(script)], capture_output=True, text=True)
    except FileNotFoundError as e:
        raise LaunchError(
            "sbatch not found: run alignclip-launch launch=slurm on a SLURM login node, or "
            "launch.submit=false to only write the scripts"
        ) from e
    m = _SUBMITTED.search(proc.stdout)
    if proc.returncode != 0 or not m:
        raise LaunchError(f"sbatch {script} failed: {proc.stdout}{proc.stderr}")
    return m.group(1)


def job_active(job_id: str) -> bool:
    """Whether a SLURM job is still pending or running (False when squeue is absent)."""
    try:
        proc = subprocess.run(
            ["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True
        )
    except FileNotFoundError:
        return False
    return proc.returncode == 0 and bool(proc.stdout.strip())
