"""Measured numbers from the runs' log folders.

A run is found by the table rows that used it (``recipe-uses.jsonl``, written by
``alignclip-launch``); its config (``recipe.yaml``) says how each bench role was evaluated,
so a metric ``<role>.<name>`` is read from ``evals/<task>-<dataset>.json`` (``alignclip
eval``), or for ImageNet top-1 / top-5 from upstream's ``checkpoints/results.jsonl`` at the
final epoch. Dataset statistics (``stats.<name>``) come from ``evals/dataset-stats-<data>.json``.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from alignclip_plugins.recipes import runs

STATS_ROLE = "stats"
# upstream's results.jsonl keys for the ImageNet role
TRAINER_KEYS = {"top1": "imagenet-zeroshot-val-top1", "top5": "imagenet-zeroshot-val-top5"}
# the dataset each paper role stands for (when a run measured it elsewhere, tables say so)
PAPER_DATASET = {"flickr30k_logits": "flickr30k"}


@dataclass
class RunRecord:
    """One run directory and what ``alignclip-launch`` recorded about it."""

    path: Path
    config: dict
    uses: list[dict]

    @property
    def seed(self) -> int:
        return int(self.config.get("seed", 0))

    @property
    def epochs(self) -> int | None:
        schedule = self.config.get("schedule") or {}
        return schedule.get("epochs")


@dataclass
class Measured:
    """A cell's measurement over seeds (values in the metric's own unit)."""

    values: list[float] = field(default_factory=list)
    runs: list[Path] = field(default_factory=list)
    datasets: set[str] = field(default_factory=set)

    @property
    def mean(self) -> float | None:
        return statistics.fmean(self.values) if self.values else None

    @property
    def std(self) -> float | None:
        return statistics.stdev(self.values) if len(self.values) > 1 else None


class ResultIndex:
    """The runs under a logs directory, looked up by (table, row, model, data)."""

    def __init__(self, logs: str | Path) -> None:
        self.logs = Path(logs)
        self.records: list[RunRecord] = []
        for run_dir, recipe in runs.iter_runs(self.logs):
            self.records.append(
                RunRecord(run_dir, recipe.get("config") or {}, runs.read_uses(run_dir))
            )

    def find(
        self, table: str, row: str, model: str | None, data: str | None
    ) -> list[tuple[RunRecord, dict]]:
        """``(run, use)`` of the runs (one per seed) a table row used for this model and data;
        the use says how the table's bench roles were evaluated for it."""
        found: dict[int, tuple[RunRecord, dict]] = {}
        for record in self.records:
            for use in record.uses:
                if (
                    use.get("table") == table
                    and use.get("row") == row
                    and (model is None or use.get("model") == model)
                    and (data is None or use.get("data") == data)
                ):
                    found.setdefault(int(use.get("seed", 0)), (record, use))
        return [found[s] for s in sorted(found)]

    def measure(
        self, table: str, row: str, model: str | None, data: str | None, metric: str
    ) -> Measured:
        out = Measured()
        for record, use in self.find(table, row, model, data):
            got = metric_value(record, metric, use)
            if got is not None:
                value, dataset = got
                out.values.append(value)
                out.runs.append(record.path)
                if dataset:
                    out.datasets.add(dataset)
        return out


def _role(record: RunRecord, role: str, use: dict | None = None) -> dict | None:
    """How ``role`` was evaluated for this run: from the table's use, else its own config."""
    entry = ((use or {}).get("evals") or {}).get(role)
    if not entry:
        entry = (record.config.get("bench") or {}).get(role)
    return entry if isinstance(entry, dict) and entry.get("task") else None


def _read_eval(path: Path, epochs: int | None) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict):
        return None
    if epochs is not None and data.get("epoch") not in (None, epochs):
        return None  # an evaluation of an earlier checkpoint
    return data


def eval_file(record: RunRecord, role: str, use: dict | None = None) -> Path | None:
    """The ``alignclip eval`` result file of a bench role for this run."""
    from alignclip_plugins.evaluation.results import result_name

    if role == STATS_ROLE:
        return record.path / "evals" / f"dataset-stats-{record.config['data']['name']}.json"
    entry = _role(record, role, use)
    if entry is None:
        return None
    return record.path / "evals" / result_name(str(entry["task"]), str(entry["dataset"]))


def metric_value(
    record: RunRecord, metric: str, use: dict | None = None
) -> tuple[float, str | None] | None:
    """``(value, dataset it was measured on)`` of ``<role>.<name>`` for a run, else None."""
    role, _, name = metric.partition(".")
    path = eval_file(record, role, use)
    epochs = None if role == STATS_ROLE else record.epochs
    data = _read_eval(path, epochs) if path is not None else None
    if data is not None:
        value = (data.get("metrics") or {}).get(name)
        if isinstance(value, (int, float)) and math.isfinite(value):
            return float(value), data.get("dataset")
    entry = _role(record, role, use)
    if entry and entry.get("during_training") and name in TRAINER_KEYS and record.epochs:
        value = runs.trainer_metric(record.path, int(record.epochs), TRAINER_KEYS[name])
        if value is not None:
            return value, str(entry.get("dataset"))
    return None


def curve(record: RunRecord, role: str, use: dict | None = None) -> list[float] | None:
    """The averaged sorted probabilities of a logit-distribution evaluation."""
    path = eval_file(record, role, use)
    data = _read_eval(path, record.epochs) if path is not None else None
    if data is None:
        return None
    curves = (data.get("details") or {}).get("curves") or {}
    if curves:
        values = next(iter(curves.values()))
        return [float(v) for v in values]
    metrics = data.get("metrics") or {}
    ranked = sorted(
        ((int(k.split("@")[1]), v) for k, v in metrics.items() if k.startswith("prob@")),
    )
    return [float(v) for _, v in ranked] or None


def substituted(role: str, datasets: set[str]) -> list[str]:
    """Datasets a role was measured on other than the paper's."""
    if role == STATS_ROLE:
        return []
    expected = PAPER_DATASET.get(role, role)
    return sorted(d for d in datasets if d != expected)
