"""The papers' figures as PNG plots of the measured runs, with what the paper's text states.

The figures' curves are not in the paper texts (they were images), so a plot shows the
measured curves, the few points the text does state (e.g. Fig. 4b at beta = 0.3 is Table 6's
SoftCLIP), and says in the figure that the paper's curves are not available as numbers.
"""

from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass, field
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_save_figure
from alignclip_plugins.tables.markdown import Rendered
from alignclip_plugins.tables.results import ResultIndex, curve
from alignclip_plugins.tables.spec import Figure, Table

NO_CURVE = "the paper's curves are not in its text (they are images), so they are not drawn"
STATED = "starred: numbers the paper's text does state"


@dataclass
class Point:
    x: float
    row: str
    mean: float | None
    std: float | None
    n: int


@dataclass
class FigureData:
    """Measured points (figures) or curves (logit distributions) per series label."""

    points: dict[str, list[Point]] = field(default_factory=dict)
    curves: dict[str, list[float]] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)


def sweep_rows(figure: Figure, config_dir: str | os.PathLike | None = None) -> list:
    """The experiment's rows (expanded sweeps) behind a figure."""
    from omegaconf import OmegaConf

    from alignclip_plugins.recipes.conf import shipped_conf_dir, user_conf_dir
    from alignclip_plugins.recipes.experiment import expand_rows

    for base in (shipped_conf_dir(), user_conf_dir(config_dir)):
        if base is None:
            continue
        path = base / "experiment" / f"{figure.runs_of}.yaml"
        if path.is_file():
            raw = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
            return expand_rows(raw.get("rows"))
    raise FileNotFoundError(f"no experiment config for {figure.runs_of}")


def collect(
    figure: Figure,
    index: ResultIndex,
    *,
    model: str | None = None,
    data: str | None = None,
    config_dir=None,
) -> FigureData:
    out = FigureData()
    fmodel = model or figure.defaults.get("model")
    fdata = data or figure.defaults.get("data")
    if figure.kind == "curve":
        role = figure.defaults["metric"]
        for series in figure.series:
            curves = [
                c
                for c in (
                    curve(r, role, use)
                    for r, use in index.find(figure.runs_of, series.row, fmodel, fdata)
                )
                if c
            ]
            if not curves:
                out.missing.append(f"row `{series.row}` ({fmodel}, {fdata})")
                continue
            n = min(len(c) for c in curves)
            out.curves[series.label] = [sum(c[i] for c in curves) / len(curves) for i in range(n)]
        return out
    key = figure.x["key"]
    multiply = float(figure.x.get("multiply", 1))
    rows = sweep_rows(figure, config_dir)
    for series in figure.series:
        points = []
        for row in (r for r in rows if r.group == series.group):
            x = float(row.set[key]) * multiply
            measured = index.measure(
                figure.runs_of, row.name, fmodel, fdata, figure.defaults["metric"]
            )
            mean = None if measured.mean is None else measured.mean * figure.scale
            std = None if measured.std is None else measured.std * figure.scale
            if mean is None:
                out.missing.append(f"row `{row.name}` ({fmodel}, {fdata})")
            points.append(Point(x, row.name, mean, std, len(measured.values)))
        out.points[series.label] = sorted(points, key=lambda p: p.x)
    return out


def markdown(figure: Figure, data: FigureData, png: str | None = None) -> str:
    """A Markdown summary of a figure: the measured values, the paper's statements."""
    d = figure.digits
    lines = [
        f"### {figure.title}",
        "",
        f"Source: {figure.source}. {NO_CURVE[0].upper()}{NO_CURVE[1:]}.",
    ]
    if png:
        lines += ["", f"![{figure.name}]({png})"]
    if figure.kind == "curve":
        lines += [
            "",
            "| series | rank 1 | rank 2 | rank 5 | rank 10 | rank 50 |",
            "|---|---|---|---|---|---|",
        ]
        for label, values in data.curves.items():
            cells = [f"{values[i - 1]:.4f}" if len(values) >= i else "—" for i in (1, 2, 5, 10, 50)]
            lines.append(f"| {label} | " + " | ".join(cells) + " |")
    else:
        xs = sorted({p.x for pts in data.points.values() for p in pts})
        lines += [
            "",
            f"| {figure.xlabel} | " + " | ".join(data.points) + " |",
            "|---" * (len(data.points) + 1) + "|",
        ]
        for x in xs:
            cells = []
            for pts in data.points.values():
                p = next((p for p in pts if p.x == x), None)
                if p is None or p.mean is None:
                    cells.append("missing" if p is not None else "")
                else:
                    text = f"{p.mean:.{d}f}"
                    if p.std is not None:
                        text += f" ± {p.std:.{d}f} (n={p.n})"
                    cells.append(text)
            lines.append(f"| {round(x, 2):g} | " + " | ".join(cells) + " |")
    points = [
        f"{p['series']} at {p['x']:g}: {p['y']:g} ({p['source']})" for p in figure.paper_points
    ]
    if points:
        lines += ["", "Paper points stated in the text: " + "; ".join(points) + "."]
    if figure.findings:
        lines += ["", "The paper's findings:"] + [f"- {f}" for f in figure.findings]
    if data.missing:
        lines += ["", "Missing: " + "; ".join(dict.fromkeys(data.missing)) + "."]
    return "\n".join(lines) + "\n"


def plot(
    figure: Figure, data: FigureData, path: str | os.PathLike, note: str | None = None
) -> Path:
    """Save the figure as PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    footer = [f"Paper: {f}" for f in figure.findings] + [f"Note: {NO_CURVE}."]
    if figure.paper_points:
        footer[-1] = f"Note: {NO_CURVE}; {STATED}."
    if note:
        footer.append(note)
    wrapped = "\n".join(textwrap.fill(f, 110) for f in footer)
    if figure.kind == "curve":
        fig, axes = plt.subplots(2, 1, figsize=(8, 6.5), dpi=120)
        for label, values in data.curves.items():
            ranks = list(range(1, len(values) + 1))
            axes[0].plot(ranks[:10], values[:10], marker="o", label=label)
            axes[1].plot(ranks[10:50], values[10:50], marker=".", label=label)
        axes[0].set_title("top 1-10")
        axes[1].set_title("top 11-50")
        for ax in axes:
            ax.set_xlabel(figure.xlabel)
            ax.set_ylabel(figure.ylabel)
            ax.grid(alpha=0.3)
            if data.curves:
                ax.legend()
        if not data.curves:
            axes[0].text(0.5, 0.5, "no measured runs yet", ha="center", transform=axes[0].transAxes)
    else:
        fig, ax = plt.subplots(figsize=(8, 5), dpi=120)
        axes = [ax]
        for label, points in data.points.items():
            measured = [p for p in points if p.mean is not None]
            if measured:
                ax.errorbar(
                    [p.x for p in measured],
                    [p.mean for p in measured],
                    yerr=[p.std or 0.0 for p in measured],
                    marker="o",
                    capsize=3,
                    label=f"{label} (measured)",
                )
        labels = {s.group: s.label for s in figure.series}
        for p in figure.paper_points:
            ax.plot(
                [p["x"]], [p["y"]], marker="*", markersize=14, color="black", linestyle="none",
                label=f"paper: {labels.get(p['series'], p['series'])} ({p['source']})",
            )  # fmt: skip
        if figure.x.get("log"):
            ax.set_xscale("log")
        ax.set_xlabel(figure.xlabel)
        ax.set_ylabel(figure.ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no measured runs yet", ha="center", transform=ax.transAxes)
    fig.suptitle(textwrap.fill(figure.title, 90), fontsize=10)
    fig.text(0.01, 0.01, wrapped, fontsize=7, va="bottom", ha="left")
    lines = wrapped.count("\n") + 1
    fig.tight_layout(rect=(0, 0.03 + 0.025 * lines, 1, 0.95))
    atomic_save_figure(fig, path, format="png")
    plt.close(fig)
    return path


def bar_chart(table: Table, rendered: Rendered, path: str | os.PathLike) -> Path | None:
    """A PNG bar chart of a versus table's ``chart`` column: each row's mean with its SD
    over seeds as an error bar, the ``versus`` row's mean as a dashed line, and the rows
    whose difference to it exceeds two standard errors marked; None without measurements."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    column = next(c for c in table.columns if c.key == table.chart)
    rows = [r for r in table.rows if (r.id, column.key) in rendered.values]
    if not rows:
        return None
    measured = [rendered.values[(r.id, column.key)] for r in rows]
    labels = [" ".join(r.label) for r in rows]
    starred = {e for e in rendered.exceeding if e.endswith(f" {column.label}")}
    fig, ax = plt.subplots(figsize=(max(5.0, 0.9 * len(rows) + 2), 4.2), dpi=120)
    x = range(len(rows))
    means = [m.mean * table.scale for m in measured]
    ax.bar(
        x,
        means,
        yerr=[(m.std or 0.0) * table.scale for m in measured],
        capsize=4,
        color=["#888888" if r.id == table.versus else "#4c72b0" for r in rows],
    )
    base = rendered.values.get((table.versus, column.key))
    if base is not None:
        ax.axhline(base.mean * table.scale, color="black", linestyle="--", linewidth=1)
    for i, (label, mean) in enumerate(zip(labels, means)):
        mark = "*" if f"{label} {column.label}" in starred else ""
        ax.text(i, mean, f"{mean:.{table.digits}f}{mark}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(list(x), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(f"{column.label} (%)" if table.scale == 100 else column.label)
    seeds = max(len(m.values) for m in measured)
    ax.set_title(
        textwrap.fill(f"{table.title} — {column.label}, mean ± SD over {seeds} seed(s)", 70),
        fontsize=9,
    )
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    path = atomic_save_figure(fig, path, format="png")
    plt.close(fig)
    return path
