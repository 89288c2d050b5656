"""From an experiment config to run plans: rows x models x datasets x seeds.

An experiment (``recipes/conf/experiment/<paper>/<table>.yaml``) lists its rows::

    rows:
      - {row: clip, method: clip}
      - {row: A2A-R2R, method: softclip, set: {method.options.softclip_v2l_target: A2A}}
      - {row: gamma, method: softclip_guidance_mix,
         sweep: {method.options.softclip_gamma: [0.0, 0.5, 1.0]}}   # rows gamma-0, gamma-0.5, ...
    grid: {model: [RN50, ViT-B-32], data: [cc3m]}

Each run is composed again from the user's overrides plus ``model=``, ``data=`` and
``method=`` of its grid point and row; ``set`` values are applied last (a sweep's value
wins over a command-line override of the same key). A command-line ``model=`` / ``data=``
replaces that axis of the grid; ``seeds=[0,1,2]`` repeats every run per seed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from omegaconf import OmegaConf, open_dict

from alignclip_plugins.recipes.command import effective_options
from alignclip_plugins.recipes.conf import Composer, RecipeConfigError, resolve

GRID_KEYS = ("model", "data")
_OVERRIDE_KEY = re.compile(r"^(?:\+\+|\+|~)?([A-Za-z_][\w./@-]*)=")
# Schedule fields that make two runs different experiments.
_SCHEDULE_IDENTITY = (
    "epochs",
    "global_batch",
    "max_samples",
    "lr",
    "wd",
    "warmup_fraction",
    "beta1",
    "beta2",
    "eps",
    "precision",
    "extra",
)


@dataclass(frozen=True)
class Row:
    """One row of a table (a sweep row expands into one ``Row`` per value)."""

    name: str
    method: str | None
    kind: str = "train"
    group: str = ""  # the experiment's row name (a sweep's rows share it)
    set: dict = field(default_factory=dict)
    models: tuple[str, ...] | None = None
    data: tuple[str, ...] | None = None


@dataclass
class RunPlan:
    """One run: its identity, name and fully resolved configuration."""

    table: str
    row: str
    kind: str
    model: str
    data: str
    seed: int
    config: dict
    name: str
    identity: dict

    @property
    def identity_hash(self) -> str:
        return identity_hash(self.identity)

    @property
    def label(self) -> str:
        if self.kind == "stats":
            return f"{self.table} · {self.row} · {self.data}"
        return f"{self.table} · {self.row} · {self.model} · {self.data} · seed {self.seed}"


def override_key(override: str) -> str | None:
    """The key of a Hydra override (``model=RN50`` -> ``model``), None if it has none."""
    m = _OVERRIDE_KEY.match(override)
    return m.group(1) if m else None


def format_value(value) -> str:
    """A sweep value as it appears in a row name (``0.0001``, ``0.5``, ``1``, ``mean``)."""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def expand_rows(rows: Sequence[dict] | None) -> list[Row]:
    """Rows with their sweeps expanded, in order; errors name the bad row."""
    out: list[Row] = []
    for i, row in enumerate(rows or []):
        if not isinstance(row, dict) or "row" not in row:
            raise RecipeConfigError(f"rows[{i}] must be a mapping with a 'row' name, got {row!r}")
        unknown = set(row) - {"row", "method", "kind", "set", "sweep", "models", "data"}
        if unknown:
            raise RecipeConfigError(f"rows[{i}] ({row['row']}): unknown keys {sorted(unknown)}")
        base = dict(
            method=row.get("method"),
            kind=row.get("kind", "train"),
            models=tuple(row["models"]) if row.get("models") else None,
            data=tuple(row["data"]) if row.get("data") else None,
        )
        if base["kind"] not in ("train", "stats"):
            raise RecipeConfigError(f"rows[{i}] ({row['row']}): kind must be train or stats")
        fixed = dict(row.get("set") or {})
        sweep = dict(row.get("sweep") or {})
        if len(sweep) > 1:
            raise RecipeConfigError(f"rows[{i}] ({row['row']}): sweep one key per row")
        if not sweep:
            out.append(Row(name=str(row["row"]), set=fixed, group=str(row["row"]), **base))
            continue
        ((key, values),) = sweep.items()
        for value in values:
            name = f"{row['row']}-{format_value(value)}"
            out.append(Row(name=name, set={**fixed, key: value}, group=str(row["row"]), **base))
    names = [r.name for r in out]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise RecipeConfigError(f"duplicate row names: {dupes}")
    return out


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._+=-]+", "_", text)


def run_name(cfg: dict) -> str:
    """``<table>__<row>__<model>__<data>__seed<N>[__<tag>]`` (stats rows: no model, seed)."""
    parts = [cfg["table"].replace("/", "-"), cfg["row"]]
    if cfg["kind"] == "stats":
        parts.append(cfg["data"]["name"])
    else:
        parts += [cfg["model"]["name"], cfg["data"]["name"], f"seed{cfg['seed']}"]
    if cfg.get("tag"):
        parts.append(str(cfg["tag"]))
    return "__".join(_safe(str(p)) for p in parts)


def _is_location(value) -> bool:
    return isinstance(value, str) and ("/" in value or "\\" in value)


def identity(cfg: dict) -> dict:
    """What makes two runs the same experiment (paths and launch details left out).

    A run whose identity matches a finished or started run is not trained again, whatever
    table or row asked for it (SoftCLIP's default row is in Tables 6, 9 and 10).
    """
    data = cfg["data"]
    method = cfg["method"]
    if cfg["kind"] == "stats":
        return {
            "kind": "stats",
            "data": data["name"],
            "objects_parser": data.get("objects_parser"),
        }
    data_id = {
        "name": data["name"],
        "subset": float(data.get("subset", 1.0)),
        "subset_seed": int(data.get("subset_seed", 0)),
    }
    if data.get("synth"):  # the embedded data: its generation options are the dataset
        data_id["synth"] = dict(data["synth"])
    if "objects" in (method.get("needs") or []):
        data_id["objects_parser"] = data.get("objects_parser")
    if data.get("caption_choice"):  # multi-caption data: which caption a sample shows
        data_id["caption_choice"] = data["caption_choice"]
    written = {k: v for k, v in (method.get("options") or {}).items() if not _is_location(v)}
    options = dict(sorted(effective_options(method.get("plugins") or [], written).items()))
    schedule = cfg["schedule"]
    extra = {}
    if cfg["model"].get("force_image_size"):
        extra["image_size"] = int(cfg["model"]["force_image_size"])
    return {
        "kind": "train",
        "model": cfg["model"]["name"],
        **extra,
        "data": data_id,
        "method": {
            "plugins": list(method.get("plugins") or []),
            "loss": method.get("loss"),
            "options": options,
        },
        "schedule": {k: schedule.get(k) for k in _SCHEDULE_IDENTITY},
        "seed": int(cfg["seed"]),
        "train_args": list(cfg.get("train_args") or []),
    }


def identity_hash(ident: dict) -> str:
    """A short, stable hash of an identity."""
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _prune_bench(cfg) -> None:
    """Drop the bench roles this run does not evaluate (ImageNet's stays: methods' zero-shot
    options refer to it), so that resolving and recording the config stay small."""
    bench = cfg.get("bench")
    if bench is None:
        return
    keep = {*(cfg.get("evals") or []), "imagenet"}
    with open_dict(bench):
        for key in list(bench.keys()):
            node = bench._get_node(key)
            if OmegaConf.is_dict(node) and key not in keep:
                del bench[key]


def _grid_axis(user: dict[str, str], base, key: str) -> list[str | None]:
    if key in user:
        return [user[key]]
    values = OmegaConf.select(base, f"grid.{key}")
    return list(values) if values else [None]


def plan_runs(
    composer: Composer,
    overrides: Sequence[str],
    rows: Sequence[str] | None = None,
) -> list[RunPlan]:
    """Every run of the composed experiment (or the single run without one).

    ``rows`` keeps only those row names (a sweep row's base name selects all its values).
    """
    overrides = list(overrides)
    base = composer.compose(overrides)
    user = {}
    for o in overrides:
        key = override_key(o)
        if key in (*GRID_KEYS, "method"):
            user[key] = o.split("=", 1)[1]
        if key in ("seed", "row", "kind"):
            raise RecipeConfigError(f"{o}: {key} is set per run by the launcher (use seeds=[...])")
    has_rows = base.get("rows") is not None
    if has_rows and "method" in user:
        raise RecipeConfigError(
            f"method={user['method']}: the experiment's rows choose the methods; pick rows "
            "with --rows, or change a method's options with method.options.NAME=VALUE"
        )
    table_rows = (
        expand_rows(OmegaConf.to_container(base.rows, resolve=False))
        if has_rows
        else [
            Row(
                name=str(base.method.name),
                method=user.get("method"),
                group=str(base.method.name),
            )
        ]
    )
    if rows:
        wanted = set(rows)
        known = {r.name for r in table_rows} | {r.group for r in table_rows}
        unknown = sorted(wanted - known)
        if unknown:
            raise RecipeConfigError(
                f"--rows {','.join(unknown)}: no such row; rows: "
                + ", ".join(r.name for r in table_rows)
            )
        table_rows = [r for r in table_rows if r.name in wanted or r.group in wanted]
    seeds = [int(s) for s in (base.get("seeds") or [0])]
    passthrough = [o for o in overrides if override_key(o) not in (*GRID_KEYS, "method")]
    plans: list[RunPlan] = []
    for row in table_rows:
        models = _grid_axis(user, base, "model")
        datas = _grid_axis(user, base, "data")
        if row.models and "model" not in user:
            models = [m for m in models if m in row.models] or list(row.models)
        if row.data and "data" not in user:
            datas = [d for d in datas if d in row.data] or list(row.data)
        for data in datas:
            for model in models if row.kind == "train" else models[:1]:
                for seed in seeds if row.kind == "train" else seeds[:1]:
                    run = list(passthrough)
                    run += [f"model={model}"] if model else []
                    run += [f"data={data}"] if data else []
                    run += [f"method={row.method}"] if row.method else []
                    cfg = composer.compose(run)
                    for key, value in row.set.items():
                        try:
                            OmegaConf.update(cfg, key, value, merge=True)
                        except Exception as e:  # omegaconf raises several types here
                            raise RecipeConfigError(
                                f"row {row.name}: cannot set {key}={value!r}: {e}"
                            ) from e
                    cfg.row = row.name
                    cfg.seed = seed
                    cfg.kind = row.kind
                    _prune_bench(cfg)
                    resolved = resolve(cfg)
                    plans.append(
                        RunPlan(
                            table=resolved["table"],
                            row=row.name,
                            kind=row.kind,
                            model=resolved["model"]["name"],
                            data=resolved["data"]["name"],
                            seed=seed,
                            config=resolved,
                            name=run_name(resolved),
                            identity=identity(resolved),
                        )
                    )
    return plans
