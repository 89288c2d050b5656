"""``alignclip eval retrieval-grid``: each query caption's top images under every model, in
one PNG (rows interleaved: query 1 under each model, then query 2, ...)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignclip_plugins.evaluation.tasks import base
from alignclip_plugins.evaluation.tasks.base import EvalError


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p)
    p.add_argument("--query", nargs="+", default=[], help="query captions")
    p.add_argument("--queries", type=Path, default=None, help="file of query captions, one a line")
    p.add_argument(
        "--num-queries", type=int, default=5,
        help="without --query/--queries: this many dataset captions, drawn with --seed",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=10, help="images per query (default 10)")
    p.add_argument("--thumbnail", type=int, default=128, help="thumbnail size in px")


def query_texts(args: argparse.Namespace) -> list[str]:
    """The ``--query`` captions, then the non-blank lines of ``--queries`` (stripped)."""
    from alignclip_plugins.captions.choice import caption_lines

    texts = list(args.query)
    if args.queries:
        try:
            texts += caption_lines(args.queries.read_text(encoding="utf-8"))
        except OSError as e:
            raise EvalError(f"cannot read --queries {args.queries}: {e}") from e
    return texts


def run(args: argparse.Namespace) -> None:
    from alignclip_plugins.evaluation import retrieval_grid as rg

    source = base.open_captioned(args)
    texts = query_texts(args)
    per_model, pending, first = [], [], None
    # (query, key of its own image); None: dataset captions drawn from the first model's data
    queries: list[tuple[str, str | None]] | None = [(t, None) for t in texts] or None
    for loaded in base.iter_models(args):
        encoder, emb = base.embed_captioned(args, source, loaded, thumbnails=args.thumbnail)
        if queries is None:
            queries = [
                (c, emb.keys[i]) for c, i in rg.pick_queries(emb, args.num_queries, args.seed)
            ]
        texts = [q for q, _ in queries]
        rows = rg.rank(
            emb, texts, encoder.texts(texts), [gt for _, gt in queries], args.top, loaded.label
        )
        per_model.append(rows)
        first = first or base.picture_path(args, "retrieval-grid", source.slug, loaded)
        details = {
            "label": loaded.label,
            "queries": [
                {"query": r.query, "ground_truth": gt, "top": r.keys, "scores": r.scores}
                for r, (_, gt) in zip(rows, queries)
            ],
        }
        pending.append((loaded, details))
    interleaved = [rows[q] for q in range(len(queries)) for rows in per_model]
    png = rg.render(interleaved, first)
    options = {**base.data_options(args, source), "top": args.top, "seed": args.seed}
    table = []
    for (loaded, details), rows in zip(pending, per_model):
        # dataset captions as queries: how often their own image is in the grid
        known = [r for r, (_, gt) in zip(rows, queries) if gt is not None]
        metrics = {}
        if known:
            metrics[f"query_hit@{args.top}"] = sum(any(r.correct) for r in known) / len(known)
        base.write(args, "retrieval-grid", source.slug, loaded, metrics, options, details, [png])
        table.append((loaded.label, metrics))
    print(f"retrieval grid ({len(queries)} queries x {len(per_model)} models): {png}")
    if any(m for _, m in table):
        base.print_table(f"queries whose own image is in their top {args.top}, %", table)


TASK = base.Task("text-to-image top-10 retrieval grids (PNG)", add_arguments, run)
