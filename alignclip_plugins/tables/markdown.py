"""Markdown tables: the paper's number beside the measured one, and the paper's own rows.

A cell reads ``paper → measured (measured − paper)``; tables of this project's own
experiments (``versus``: a baseline row) read ``mean ± SD (Δ ± SE)`` instead, see
:func:`render_versus`. Otherwise ``missing`` where no run has the
number yet, ``n/a`` for rows that are not this project's (a published baseline). With more
than one seed the measured value is ``mean ± std``. :func:`paper_row` re-renders a row of the
paper from the data file alone (with the gains the paper prints, computed from its values);
the tests compare it with the paper's text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from alignclip_plugins.tables.results import Measured, ResultIndex, substituted
from alignclip_plugins.tables.spec import Column, Row, Table


def format_number(value: float, digits: int, thousands: bool = False) -> str:
    if thousands:
        return f"{value:,.{digits}f}"
    return f"{value:.{digits}f}"


def format_delta(value: float, digits: int, thousands: bool = False) -> str:
    """``+6.5`` / ``-0.3`` (always signed; ``-0.0`` shown as ``+0.0``)."""
    text = format_number(abs(value), digits, thousands)
    negative = value < 0 and float(text.replace(",", "")) != 0
    return ("-" if negative else "+") + text


def paper_value(table: Table, row: Row, column: Column) -> float | None:
    return row.paper[table.columns.index(column)]


def paper_gain(table: Table, row: Row, column: Column) -> float | None:
    """The gain over the baseline the paper prints next to a value (None if it prints none)."""
    value = paper_value(table, row, column)
    if not table.deltas or value is None:
        return None
    base = None
    if row.baseline is not None:
        base = paper_value(table, table.row(row.baseline), column)
    elif column.baseline is not None:
        base = paper_value(table, row, table.column(column.baseline))
    return None if base is None else value - base


def paper_row(table: Table, row: Row) -> str:
    """The row as the paper prints it: label, values and ``(+gain)`` where it prints one."""
    parts = list(row.label)
    for column in table.columns:
        value = paper_value(table, row, column)
        if value is None:
            continue
        text = format_number(value, table.digits, table.thousands)
        gain = paper_gain(table, row, column)
        if gain is not None:
            text += f"({format_delta(gain, table.digits, table.thousands)})"
        parts.append(text)
    return " ".join(parts)


@dataclass
class Rendered:
    """A rendered table and what it found out."""

    markdown: str
    cells: int = 0
    measured: int = 0
    missing: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    values: dict[tuple[str, str], Measured] = field(default_factory=dict)  # (row id, column key)
    exceeding: list[str] = field(default_factory=list)  # cells with |Δ| > 2 SE


def _substitute(cell: dict, model: str | None, data: str | None) -> dict:
    cell = dict(cell)
    if model:
        cell["model"] = model
    if data:
        cell["data"] = data
    return cell


def measure_cell(
    index: ResultIndex,
    table: Table,
    row: Row,
    column: Column,
    model: str | None = None,
    data: str | None = None,
    values: dict | None = None,
) -> Measured | None:
    """The measurement of one cell (None for an external row or a computed column)."""
    if column.mean_of:
        parts = [values.get((row.id, key)) if values else None for key in column.mean_of]
        if any(p is None or not p.values for p in parts):
            return Measured()
        n = min(len(p.values) for p in parts)
        out = Measured()
        out.values = [sum(p.values[i] for p in parts) / len(parts) for i in range(n)]
        return out
    cell = _substitute(table.cell(row, column), model, data)
    if row.external or cell["row"] is None:
        return None
    return index.measure(table.runs_of, cell["row"], cell["model"], cell["data"], cell["metric"])


def difference(a: Measured, b: Measured) -> tuple[float, float | None]:
    """``(mean(a) - mean(b), its standard error sqrt(s_a²/n_a + s_b²/n_b))``; the error is
    None when either side has fewer than two values (no standard deviation)."""
    delta = a.mean - b.mean
    if a.std is None or b.std is None:
        return delta, None
    return delta, math.sqrt(a.std**2 / len(a.values) + b.std**2 / len(b.values))


def _delta_text(measured: Measured, reference: Measured, table: Table) -> tuple[str, bool]:
    """``"+1.2 ± 0.4*"`` (or ``"+1.2"`` without spread) and whether ``|Δ| > 2 SE > 0``."""
    delta, se = difference(measured, reference)
    shown = format_delta(delta * table.scale, table.digits)
    if se is None:
        return shown, False
    star = se > 0 and abs(delta) > 2 * se
    return f"{shown} ± {format_number(se * table.scale, table.digits)}{'*' if star else ''}", star


def render_versus(
    table: Table,
    index: ResultIndex,
    *,
    model: str | None = None,
    data: str | None = None,
    script: str | None = None,
) -> Rendered:
    """A measured-only table: ``mean ± SD`` per cell and, for every row but the ``versus``
    row, ``(Δ ± SE)`` against it, starred where ``|Δ| > 2 SE`` (and SE > 0: with no spread
    over the seeds there is no evidence either way). With ``delta_column`` the differences
    of that column only, in a column of their own."""
    digits, scale = table.digits, table.scale
    base_row = table.row(table.versus)
    versus = " ".join(base_row.label)
    values: dict = {}  # (row id, column key) -> Measured, for the mean_of columns
    for column in table.columns:
        values[(base_row.id, column.key)] = measure_cell(
            index, table, base_row, column, model, data, values
        )
    base = {c.key: values[(base_row.id, c.key)] for c in table.columns}
    header = [*table.header, *(c.label for c in table.columns)]
    delta_of = next((c for c in table.columns if c.key == table.delta_column), None)
    if delta_of is not None:
        header.append(f"Δ {delta_of.label} vs {versus}")
    header.append("seeds")
    lines = [f"### {table.title}", "", f"Source: {table.source}."]
    if table.note:
        lines += ["", table.note]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    result = Rendered("")
    missing: list[str] = []
    exceeding: list[str] = []
    for row in table.rows:
        cells = list(row.label)
        seeds = 0
        delta_cell = "—"
        for column in table.columns:
            measured = measure_cell(index, table, row, column, model, data, values)
            values[(row.id, column.key)] = measured
            result.cells += 1
            if measured is None or measured.mean is None:
                cells.append("missing")
                if not column.mean_of:
                    cell = _substitute(table.cell(row, column), model, data)
                    missing.append(f"row `{cell['row']}` ({cell['model']}, {cell['data']})")
                continue
            result.measured += 1
            result.values[(row.id, column.key)] = measured
            seeds = max(seeds, len(measured.values))
            text = format_number(measured.mean * scale, digits)
            if measured.std is not None:
                text += f" ± {format_number(measured.std * scale, digits)}"
            reference = base[column.key]
            compared = delta_of is None or column is delta_of
            if (
                row is not base_row
                and compared
                and reference is not None
                and reference.mean is not None
            ):
                shown, star = _delta_text(measured, reference, table)
                if star:
                    exceeding.append(f"{' '.join(row.label)} {column.label}")
                if delta_of is None:
                    text += f" ({shown})"
                else:
                    delta_cell = shown
            cells.append(text)
        if delta_of is not None:
            cells.append(delta_cell)
        cells.append(str(seeds) if seeds else "—")
        lines.append("| " + " | ".join(cells) + " |")
    where = "in brackets" if delta_of is None else "Δ:"
    footer = [
        f"Mean ± SD over seeds; {where} the difference to {versus} ± its standard error "
        "sqrt(s1²/n1 + s2²/n2); * where |difference| > 2 SE > 0"
        + (f" ({'; '.join(exceeding)})." if exceeding else " (none).")
    ]
    if model or data:
        footer.append(
            "Runs looked up with "
            + ", ".join(f"{k}={v}" for k, v in (("model", model), ("data", data)) if v)
            + "."
        )
    if missing:
        how = f" (run `{script}`)" if script else ""
        footer.append(f"Missing{how}: " + "; ".join(dict.fromkeys(missing)) + ".")
    lines += [""] + [f"- {f}" for f in footer]
    result.markdown = "\n".join(lines) + "\n"
    result.missing = list(dict.fromkeys(missing))
    result.exceeding = exceeding
    return result


def render_table(
    table: Table,
    index: ResultIndex,
    *,
    model: str | None = None,
    data: str | None = None,
    script: str | None = None,
) -> Rendered:
    """The Markdown of ``table`` with the measured numbers from ``index``."""
    if table.versus is not None:
        return render_versus(table, index, model=model, data=data, script=script)
    digits, thousands, scale = table.digits, table.thousands, table.scale
    values: dict[tuple[str, str], Measured] = {}
    lines = [
        f"### {table.title}",
        "",
        f"Source: {table.source}. Cells: paper → measured (measured − paper).",
    ]
    if table.note:
        lines += ["", table.note]
    header = [*table.header, *(c.label for c in table.columns)]
    lines += ["", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    result = Rendered("")
    notes: set[str] = set()
    missing: list[str] = []
    for row in table.rows:
        cells = list(row.label)
        for column in table.columns:
            paper = paper_value(table, row, column)
            measured = measure_cell(index, table, row, column, model, data, values)
            if measured is not None:
                values[(row.id, column.key)] = measured
            paper_text = "—" if paper is None else format_number(paper, digits, thousands)
            if measured is None:
                cells.append(f"{paper_text} → n/a")
                continue
            result.cells += 1
            if measured.mean is None:
                cells.append(f"{paper_text} → missing")
                if not column.mean_of:
                    cell = _substitute(table.cell(row, column), model, data)
                    missing.append(
                        f"row `{cell['row']}` ({cell['model']}, {cell['data']}): {cell['metric']}"
                    )
                continue
            result.measured += 1
            value = measured.mean * scale
            text = format_number(value, digits, thousands)
            if measured.std is not None:
                text += f" ± {format_number(measured.std * scale, digits, thousands)}"
                text += f" (n={len(measured.values)})"
            if paper is not None:
                text += f" ({format_delta(value - paper, digits, thousands)})"
            cells.append(f"{paper_text} → {text}")
            role = (table.cell(row, column)["metric"] or "").split(".")[0]
            for other in substituted(role, measured.datasets):
                notes.add(f"`{role}` was measured on `{other}`, not on the paper's dataset")
        lines.append("| " + " | ".join(cells) + " |")
    externals = [f"{' '.join(r.label)}: {r.external}" for r in table.rows if r.external]
    footer = []
    if model or data:
        footer.append(
            "Runs looked up with "
            + ", ".join(f"{k}={v}" for k, v in (("model", model), ("data", data)) if v)
            + " in place of the paper's (smoke scale: numbers are not comparable)."
        )
    footer += sorted(notes)
    footer += [f"n/a: {e}" for e in externals]
    if missing:
        unique = list(dict.fromkeys(missing))
        how = f" (run `{script}`)" if script else ""
        footer.append(f"Missing{how}: " + "; ".join(unique) + ".")
    if footer:
        lines += [""] + [f"- {f}" for f in footer]
    result.markdown = "\n".join(lines) + "\n"
    result.missing = list(dict.fromkeys(missing))
    result.notes = sorted(notes)
    return result
