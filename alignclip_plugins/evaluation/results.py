"""Evaluation result files: where ``alignclip eval`` writes each result and how to read it back.

Layout (``alignclip tables`` reads it):

* a checkpoint of a training run, ``<logs>/<name>/checkpoints/epoch_N.pt``, gets
  ``<logs>/<name>/evals/<task>[-<dataset>].json``;
* any other checkpoint file ``DIR/STEM.pt`` gets ``DIR/STEM.evals/<task>[-<dataset>].json``;
* ``--out DIR`` puts the file in ``DIR`` instead (required for ``--pretrained`` weights).

Content, one JSON object per file::

    {"task": "zeroshot", "dataset": "imagenet", "checkpoint": "/abs/epoch_32.pt",
     "model": "ViT-B-32", "epoch": 32, "metrics": {"top1": 0.312, ...},
     "options": {...}, "created": "2024-05-01T12:00:00+00:00",
     "details": {...}, "artifacts": ["/abs/....png"]}

``metrics`` is flat, name -> float in [0, 1] for accuracies, recalls and mAPs; a metric that is
undefined on the data (e.g. ``tail_top1`` without tail classes) is left out, never NaN.
``details`` (counts, per-query lists) and ``artifacts`` (pictures) are optional extras.
Files are written atomically; a rerun replaces the file.
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alignclip_plugins.io.atomic import atomic_write_text

#: Keys every result file has.
REQUIRED_KEYS = ("task", "dataset", "checkpoint", "model", "epoch", "metrics", "options", "created")

_EPOCH_FILE = re.compile(r"^epoch_(\d+)$")


@dataclass
class EvalResult:
    """One evaluation of one checkpoint on one dataset (see the module docstring)."""

    task: str
    dataset: str | None
    checkpoint: str | None
    model: str
    epoch: int | None
    metrics: dict[str, float]
    options: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    artifacts: list[str] = field(default_factory=list)
    path: Path | None = None  # where it was read from or written to; not stored

    def to_json(self) -> dict[str, Any]:
        out = {
            "task": self.task,
            "dataset": self.dataset,
            "checkpoint": self.checkpoint,
            "model": self.model,
            "epoch": self.epoch,
            "metrics": {k: float(v) for k, v in self.metrics.items()},
            "options": _jsonable(self.options),
            "created": self.created or now(),
        }
        if self.details:
            out["details"] = _jsonable(self.details)
        if self.artifacts:
            out["artifacts"] = [str(a) for a in self.artifacts]
        return out


def now() -> str:
    """The current time, ISO 8601 with time zone, to the second."""
    return datetime.now(timezone.utc).replace(microsecond=0).isoformat()


def slug(name: str) -> str:
    """A dataset name as the short, file-name-safe slug used in result names."""
    s = re.sub(r"[^a-z0-9.]+", "_", name.strip().lower()).strip("_.")
    if not s:
        raise ValueError(f"dataset name {name!r} has no letters or digits")
    return s


def run_dir(checkpoint: str | os.PathLike) -> Path | None:
    """``<logs>/<name>`` for a checkpoint in ``<logs>/<name>/checkpoints/``, else None."""
    path = Path(checkpoint).resolve()
    return path.parent.parent if path.parent.name == "checkpoints" else None


def checkpoint_epoch(checkpoint: str | os.PathLike) -> int | None:
    """N of an ``epoch_N.pt`` file name, else None."""
    m = _EPOCH_FILE.match(Path(checkpoint).stem)
    return int(m.group(1)) if m else None


def results_dir(checkpoint: str | os.PathLike | None, out: str | os.PathLike | None = None) -> Path:
    """The directory a checkpoint's results go to (``out`` wins when given)."""
    if out is not None:
        return Path(out)
    if checkpoint is None:
        raise ValueError("weights without a checkpoint file (--pretrained) need --out DIR")
    run = run_dir(checkpoint)
    if run is not None:
        return run / "evals"
    path = Path(checkpoint).resolve()
    return path.parent / f"{path.stem}.evals"


def result_name(task: str, dataset: str | None, suffix: str = ".json") -> str:
    """``<task>[-<dataset>]<suffix>``."""
    return f"{task}-{slug(dataset)}{suffix}" if dataset else f"{task}{suffix}"


def result_path(
    task: str,
    dataset: str | None,
    checkpoint: str | os.PathLike | None,
    out: str | os.PathLike | None = None,
) -> Path:
    """Where the result of ``task`` on ``dataset`` for ``checkpoint`` is written."""
    return results_dir(checkpoint, out) / result_name(task, dataset)


def write_result(result: EvalResult, path: str | os.PathLike) -> Path:
    """Write ``result`` to ``path`` atomically; returns the path."""
    path = Path(path)
    if not result.created:
        result.created = now()
    atomic_write_text(path, json.dumps(result.to_json(), indent=2) + "\n")
    result.path = path
    return path


def read_result(path: str | os.PathLike) -> EvalResult:
    """Read one result file, checking its shape; errors name the file and the problem."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read evaluation result {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: an evaluation result is a JSON object")
    missing = [k for k in REQUIRED_KEYS if k not in data]
    if missing:
        raise ValueError(f"{path}: not an evaluation result, it lacks {missing}")
    metrics = data["metrics"]
    if not isinstance(metrics, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in metrics.values()
    ):
        raise ValueError(f"{path}: 'metrics' must map metric names to numbers")
    epoch = data["epoch"]
    if epoch is not None and (isinstance(epoch, bool) or not isinstance(epoch, int)):
        raise ValueError(f"{path}: 'epoch' must be an integer or null, got {epoch!r}")
    return EvalResult(
        task=str(data["task"]),
        dataset=data["dataset"],
        checkpoint=data["checkpoint"],
        model=str(data["model"]),
        epoch=epoch,
        metrics={str(k): float(v) for k, v in metrics.items()},
        options=dict(data["options"] or {}),
        created=str(data["created"]),
        details=dict(data.get("details") or {}),
        artifacts=list(data.get("artifacts") or []),
        path=path,
    )


def read_results(root: str | os.PathLike) -> list[EvalResult]:
    """Every result under ``root``, sorted by path.

    ``root`` may be a result file, an ``evals`` directory (or ``STEM.evals``), a run
    directory (``<logs>/<name>``, reads ``evals/``), a logs directory (reads ``*/evals/``
    and ``*.evals/``) or an ``--out`` directory (its result files and those one level
    down). A file in an ``evals`` directory that is not a result is an error naming it.
    """
    root = Path(root)
    if root.is_file():
        return [read_result(root)]
    if not root.is_dir():
        raise FileNotFoundError(f"no evaluation results at {root}: no such file or directory")
    if (root / "evals").is_dir():
        files = sorted((root / "evals").glob("*.json"))
    elif root.name == "evals" or root.name.endswith(".evals"):
        files = sorted(root.glob("*.json"))
    else:
        files = sorted(root.glob("*/evals/*.json")) + sorted(root.glob("*.evals/*.json"))
        # an --out directory: its result files (other JSON files there are not ours)
        files += [f for f in sorted(root.glob("*.json")) if _looks_like_result(f)]
        files += [f for f in sorted(root.glob("*/*.json")) if _looks_like_result(f)]
    return [read_result(f) for f in dict.fromkeys(files)]


def _looks_like_result(path: Path) -> bool:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and all(k in data for k in REQUIRED_KEYS)


def _jsonable(value: Any) -> Any:
    """Options and details as plain JSON (paths as strings, tuples as lists, NaN as null)."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, os.PathLike):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def format_table(
    rows: Sequence[tuple[str, Mapping[str, float]]],
    columns: Iterable[str] | None = None,
    percent: bool = True,
) -> str:
    """A Markdown table, one row per ``(label, metrics)``; values in percent by default."""
    if columns is None:
        columns = list(dict.fromkeys(k for _, metrics in rows for k in metrics))
    columns = list(columns)
    lines = ["| | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for label, metrics in rows:
        cells = []
        for c in columns:
            v = metrics.get(c)
            cells.append("-" if v is None else f"{100 * v:.2f}" if percent else f"{v:.4g}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
