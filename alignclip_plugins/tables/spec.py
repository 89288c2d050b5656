"""The papers' tables and figures as data: ``paper.yaml`` (and this project's own,
``project.yaml``) loaded into checked specs.

A table cell measures ``metric`` (``<bench role>.<metric name>``) of the runs of
experiment row ``row`` with ``model`` and ``data``; those four come from the table's
``defaults``, then the row, then the column. See the head of ``paper.yaml``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

PAPER_FILE = Path(__file__).with_name("paper.yaml")
PROJECT_FILE = Path(__file__).with_name("project.yaml")  # this project's own experiments
CELL_KEYS = ("row", "model", "data", "metric")


class SpecError(ValueError):
    """A malformed table spec; the message names the table and the entry."""


@dataclass(frozen=True)
class Column:
    key: str
    label: str
    fields: dict
    baseline: str | None = None
    mean_of: tuple[str, ...] | None = None


@dataclass(frozen=True)
class Row:
    id: str
    label: tuple[str, ...]
    fields: dict
    paper: tuple[float | None, ...]
    baseline: str | None = None
    line: str | None = None
    external: str | None = None


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: tuple[Row, ...]
    header: tuple[str, ...] = ("",)
    defaults: dict = field(default_factory=dict)
    scale: float = 100.0
    digits: int = 1
    deltas: bool = False
    thousands: bool = False
    note: str | None = None
    delta_column: str | None = None  # versus tables: one Δ column for this column's key
    chart: str | None = None  # versus tables: a PNG bar chart of this column's key
    kind: str = "table"
    # a row id: measured-only cells (mean ± SD), each other row's difference to that row with
    # its standard error, and which differences exceed two of them (this project's tables)
    versus: str | None = None
    experiment: str | None = None  # the recipe experiment whose runs fill it (default: name)

    @property
    def runs_of(self) -> str:
        return self.experiment or self.name

    def column(self, key: str) -> Column:
        for c in self.columns:
            if c.key == key:
                return c
        raise KeyError(key)

    def row(self, row_id: str) -> Row:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(row_id)

    def cell(self, row: Row, column: Column) -> dict:
        """What the cell measures: ``{row, model, data, metric}`` (missing keys: None)."""
        merged = {k: None for k in CELL_KEYS}
        merged.update({k: v for k, v in self.defaults.items() if k in CELL_KEYS})
        merged.update(row.fields)
        merged.update(column.fields)
        return merged


@dataclass(frozen=True)
class Series:
    label: str
    group: str | None = None  # sweep rows of the experiment (figures)
    row: str | None = None  # one experiment row (curves)


@dataclass(frozen=True)
class Figure:
    name: str
    title: str
    source: str
    kind: str  # "figure": a metric over a swept value; "curve": a per-run curve
    series: tuple[Series, ...]
    defaults: dict = field(default_factory=dict)
    x: dict = field(default_factory=dict)
    xlabel: str = ""
    ylabel: str = ""
    scale: float = 100.0
    digits: int = 1
    paper_points: tuple[dict, ...] = ()
    findings: tuple[str, ...] = ()
    experiment: str | None = None  # the recipe experiment whose runs fill it (default: name)

    @property
    def runs_of(self) -> str:
        return self.experiment or self.name


def _fields(entry: dict) -> dict:
    return {k: entry[k] for k in CELL_KEYS if k in entry}


def _table(name: str, spec: dict) -> Table:
    try:
        columns = tuple(
            Column(
                key=str(c["key"]),
                label=str(c["label"]),
                fields=_fields(c),
                baseline=c.get("baseline"),
                mean_of=tuple(c["mean_of"]) if c.get("mean_of") else None,
            )
            for c in spec["columns"]
        )
        rows = tuple(
            Row(
                id=str(r["id"]),
                label=tuple(str(x) for x in r["label"])
                if isinstance(r["label"], list)
                else (str(r["label"]),),
                fields=_fields(r),
                paper=tuple(
                    None if v is None else float(v)
                    for v in (r["paper"] if "paper" in r else [None] * len(columns))
                ),
                baseline=r.get("baseline"),
                line=r.get("line"),
                external=r.get("external"),
            )
            for r in spec["rows"]
        )
        table = Table(
            name=name,
            title=str(spec["title"]),
            source=str(spec["source"]),
            columns=columns,
            rows=rows,
            header=tuple(spec.get("header") or ("",)),
            defaults=dict(spec.get("defaults") or {}),
            scale=float(spec.get("scale", 100)),
            digits=int(spec.get("digits", 1)),
            deltas=bool(spec.get("deltas", False)),
            thousands=bool(spec.get("thousands", False)),
            note=spec.get("note"),
            versus=spec.get("versus"),
            experiment=spec.get("experiment"),
            delta_column=spec.get("delta_column"),
            chart=spec.get("chart"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"{name}: malformed table spec ({type(e).__name__}: {e})") from e
    keys = {c.key for c in columns}
    ids = {r.id for r in rows}
    for r in rows:
        if len(r.paper) != len(columns):
            raise SpecError(
                f"{name} row {r.id}: {len(r.paper)} paper values, {len(columns)} columns"
            )
        if len(r.label) != len(table.header):
            raise SpecError(f"{name} row {r.id}: label {r.label} does not match header")
        if r.baseline is not None and r.baseline not in ids:
            raise SpecError(f"{name} row {r.id}: unknown baseline row {r.baseline!r}")
    if table.versus is not None and table.versus not in ids:
        raise SpecError(f"{name}: versus names no row ({table.versus!r})")
    for option in ("delta_column", "chart"):
        key = getattr(table, option)
        if key is not None and (table.versus is None or key not in keys):
            raise SpecError(f"{name}: {option} {key!r} needs 'versus' and one of the columns")
    for c in columns:
        if c.baseline is not None and c.baseline not in keys:
            raise SpecError(f"{name} column {c.key}: unknown baseline column {c.baseline!r}")
        if c.mean_of and set(c.mean_of) - keys:
            raise SpecError(f"{name} column {c.key}: mean_of names unknown columns")
    return table


def _figure(name: str, spec: dict) -> Figure:
    try:
        return Figure(
            name=name,
            title=str(spec["title"]),
            source=str(spec["source"]),
            kind=str(spec["kind"]),
            series=tuple(
                Series(str(s["label"]), s.get("group"), s.get("row")) for s in spec["series"]
            ),
            defaults=dict(spec.get("defaults") or {}),
            x=dict(spec.get("x") or {}),
            xlabel=str(spec.get("xlabel") or (spec.get("x") or {}).get("label", "")),
            ylabel=str(spec.get("ylabel", "")),
            scale=float(spec.get("scale", 100)),
            digits=int(spec.get("digits", 1)),
            paper_points=tuple(spec.get("paper_points") or ()),
            findings=tuple(spec.get("findings") or ()),
            experiment=spec.get("experiment"),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise SpecError(f"{name}: malformed figure spec ({type(e).__name__}: {e})") from e


def load_specs(*paths: str | os.PathLike) -> dict[str, Table | Figure]:
    """Every table and figure of the data files (default: the papers', then this project's),
    by name, in file order."""
    specs: dict[str, Table | Figure] = {}
    for path in map(Path, paths or (PAPER_FILE, PROJECT_FILE)):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError) as e:
            raise SpecError(f"cannot read the table data file {path}: {e}") from e
        for name, spec in data.items():
            if name in specs:
                raise SpecError(f"{path}: table {name} is defined twice")
            kind = spec.get("kind", "table")
            specs[name] = _figure(name, spec) if kind in ("figure", "curve") else _table(name, spec)
    return specs
