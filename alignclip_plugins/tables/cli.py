"""``alignclip tables``: render the papers' tables from the recipes' runs.

Examples::

    alignclip tables                                   # every table with results in ./runs
    alignclip tables softclip/table6 --logs runs
    alignclip tables softclip/table6 --logs runs-smoke --model tiny --data synthetic
    alignclip tables --paper softclip/table1           # the paper's own rows, from the data
    alignclip tables --list

Each table is printed as Markdown (paper → measured (measured − paper), missing runs
marked) and written to OUT/<paper>-<table>.md; figures also to OUT/<paper>-<table>.png.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_write_text
from alignclip_plugins.tables.spec import Figure, SpecError, Table, load_specs


def _slug(name: str) -> str:
    return name.replace("/", "-")


def script_for(name: str) -> str:
    """The recipe script that produces a table's runs."""
    return f"recipes/{name}.sh"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="alignclip tables", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "tables", nargs="*", metavar="TABLE", help="e.g. softclip/table6 (default: all)"
    )
    parser.add_argument(
        "--logs",
        type=Path,
        default=Path(os.environ.get("ALIGNCLIP_LOGS", "runs")),
        help="the runs' logs directory (default $ALIGNCLIP_LOGS or ./runs)",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write (default LOGS/tables)"
    )
    parser.add_argument("--model", default=None, help="look runs up with this model (e.g. tiny)")
    parser.add_argument(
        "--data", default=None, help="look runs up with this dataset (e.g. synthetic)"
    )
    parser.add_argument("--paper", action="store_true", help="print the paper's own rows")
    parser.add_argument("--list", action="store_true", help="list the tables and figures")
    return parser.parse_args(argv)


def render_paper(spec: Table | Figure) -> str:
    from alignclip_plugins.tables.markdown import paper_row

    if isinstance(spec, Figure):
        points = [f"  {p['series']} x={p['x']:g}: {p['y']:g}" for p in spec.paper_points]
        return "\n".join(
            [f"{spec.name}: {spec.title}", *points, *[f"  - {f}" for f in spec.findings]]
        )
    lines = [f"{spec.name}: {spec.title}"]
    lines += [
        "  " + paper_row(spec, row) for row in spec.rows if any(v is not None for v in row.paper)
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    try:
        specs = load_specs()
    except SpecError as e:
        print(f"alignclip tables: {e}", file=sys.stderr)
        return 2
    if args.list:
        for name, spec in specs.items():
            print(f"{name:32s} {spec.title}")
        return 0
    unknown = [t for t in args.tables if t not in specs]
    if unknown:
        print(
            f"alignclip tables: unknown table(s) {unknown}; known: {', '.join(specs)}",
            file=sys.stderr,
        )
        return 2
    names = args.tables or list(specs)
    if args.paper:
        print("\n\n".join(render_paper(specs[n]) for n in names))
        return 0

    from alignclip_plugins.tables import figures
    from alignclip_plugins.tables.markdown import render_table
    from alignclip_plugins.tables.results import ResultIndex

    index = ResultIndex(args.logs)
    out = args.out or args.logs / "tables"
    out.mkdir(parents=True, exist_ok=True)
    if not index.records:
        print(f"(no runs recorded by alignclip-launch under {args.logs})", file=sys.stderr)
    documents = []
    for name in names:
        spec = specs[name]
        if isinstance(spec, Figure):
            data = figures.collect(spec, index, model=args.model, data=args.data)
            note = None
            if args.model or args.data:
                note = f"Measured with model={args.model}, data={args.data} (smoke scale)."
            png = figures.plot(spec, data, out / f"{_slug(name)}.png", note=note)
            text = figures.markdown(spec, data, png.name)
            if note:
                text += f"\n{note} Numbers are not comparable with the paper's.\n"
            if data.missing:
                text += f"\n(run `{script_for(spec.runs_of)}`)\n"
        else:
            rendered = render_table(
                spec, index, model=args.model, data=args.data, script=script_for(spec.runs_of)
            )
            text = rendered.markdown
            if spec.chart:
                png = figures.bar_chart(spec, rendered, out / f"{_slug(name)}.png")
                if png is not None:
                    text += f"\n![{spec.title}]({png.name})\n"
        atomic_write_text(out / f"{_slug(name)}.md", text)
        documents.append(text)
    print("\n".join(documents))
    print(f"(written to {out})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
