"""Run directories: the resolved config beside the logs, reuse, resume, finished work.

``<logs>/<name>/recipe.yaml`` holds the run's resolved config, its identity and its
commands (written before training starts). ``<logs>/<name>/recipe-uses.jsonl`` lists every
table row that uses the run, one JSON object a line; ``alignclip tables`` finds runs by it.
A run is trained when its final checkpoint exists; an evaluation is done when its result
file exists for that checkpoint (or the trainer logged it for the final epoch).
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import yaml

from alignclip_plugins.io.atomic import atomic_write_text

RECIPE_FILE = "recipe.yaml"
USES_FILE = "recipe-uses.jsonl"
RESULTS_FILE = "results.jsonl"  # upstream's, in checkpoints/


class RunConflict(RuntimeError):
    """A run directory that holds a different experiment than the one asked for."""


def read_recipe(run_dir: Path) -> dict | None:
    """The ``recipe.yaml`` of a run directory, None if absent or unreadable."""
    try:
        data = yaml.safe_load((run_dir / RECIPE_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    return data if isinstance(data, dict) else None


def write_recipe(run_dir: Path, record: dict) -> None:
    record = {**record, "written": datetime.now(timezone.utc).replace(microsecond=0).isoformat()}
    atomic_write_text(run_dir / RECIPE_FILE, yaml.safe_dump(record, sort_keys=False))


def iter_runs(logs_root: Path):
    """``(run_dir, recipe)`` for every recorded run under ``logs_root``."""
    if not logs_root.is_dir():
        return
    for recipe in sorted(logs_root.glob(f"*/{RECIPE_FILE}")):
        data = read_recipe(recipe.parent)
        if data is not None:
            yield recipe.parent, data


def identity_index(logs_root: Path) -> dict[str, Path]:
    """Identity hash -> run directory, for every recorded run under ``logs_root``."""
    index: dict[str, Path] = {}
    for run_dir, recipe in iter_runs(logs_root):
        if recipe.get("identity_hash"):
            index.setdefault(str(recipe["identity_hash"]), run_dir)
    return index


def check_same(run_dir: Path, identity: dict, identity_hash: str) -> None:
    """Raise RunConflict when ``run_dir`` records another experiment."""
    recipe = read_recipe(run_dir)
    if recipe is None or recipe.get("identity_hash") in (None, identity_hash):
        return
    old = recipe.get("identity") or {}
    if same_effective_identity(old, identity):
        return
    diffs = [
        f"{key}: {old.get(key)!r} there, {identity.get(key)!r} now"
        for key in sorted(set(old) | set(identity))
        if old.get(key) != identity.get(key)
    ]
    raise RunConflict(
        f"{run_dir} holds a run configured differently ({'; '.join(diffs)}). Give the new one "
        "its own name with tag=NAME, or move the old directory away"
    )


def same_effective_identity(old: dict, new: dict) -> bool:
    """Whether a recorded identity ``old`` is the experiment ``new``, recorded with only the
    method options it wrote (before identities held the effective value of every option the
    method names, its nulls as the plugins' defaults): the same once it is filled in."""
    old_method, new_method = old.get("method") or {}, new.get("method") or {}
    if {**old, "method": None} != {**new, "method": None}:
        return False
    if any(old_method.get(k) != new_method.get(k) for k in ("plugins", "loss")):
        return False
    from alignclip_plugins.recipes.command import effective_options

    options = dict(new_method.get("options") or {})
    recorded = {**dict.fromkeys(options), **(old_method.get("options") or {})}
    return effective_options(new_method.get("plugins") or [], recorded) == options


def record_use(run_dir: Path, use: dict) -> None:
    """Note that a table row uses this run (once per distinct use)."""
    path = run_dir / USES_FILE
    line = json.dumps(use, sort_keys=True)
    if path.exists() and line in path.read_text(encoding="utf-8").splitlines():
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")


def read_uses(run_dir: Path) -> list[dict]:
    path = run_dir / USES_FILE
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def has_checkpoint(run_dir: Path) -> bool:
    return any((run_dir / "checkpoints").glob("epoch_*.pt"))


def results_rows(run_dir: Path) -> list[dict]:
    """The rows of upstream's ``checkpoints/results.jsonl`` (unreadable lines skipped)."""
    path = run_dir / "checkpoints" / RESULTS_FILE
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if isinstance(row, dict):
            rows.append(row)
    return rows


def trainer_metric(run_dir: Path, epoch: int, key: str) -> float | None:
    """A metric the trainer logged for ``epoch`` in results.jsonl (last such row wins)."""
    value = None
    for row in results_rows(run_dir):
        if row.get("epoch") == epoch and isinstance(row.get(key), (int, float)):
            value = float(row[key])
    return value


def eval_done(result: Path, checkpoint: Path) -> bool:
    """Whether ``result`` exists and was computed from ``checkpoint``."""
    try:
        data = json.loads(result.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    recorded = data.get("checkpoint")
    if not recorded:
        return False
    try:
        return Path(recorded).resolve() == checkpoint.resolve()
    except OSError:
        return False
