"""``alignclip eval logit-distribution``: SoftCLIP Fig. 6, the averaged sorted text-to-image
probabilities of each model, one plot of all of them."""

from __future__ import annotations

import argparse

from alignclip_plugins.evaluation.tasks import base

COLUMNS = ("prob@1", "prob@2", "prob@3", "prob@5", "prob@10", "prob@50")


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p)
    p.add_argument("--top", type=int, default=50, help="ranks to keep (default 50)")


def run(args: argparse.Namespace) -> None:
    from alignclip_plugins.evaluation import logit_distribution as ld

    source = base.open_captioned(args)
    curves, pending, first = {}, [], None
    for loaded in base.iter_models(args):
        encoder, emb = base.embed_captioned(args, source, loaded)
        curve = ld.profile(emb, encoder.logit_scale, args.top)
        curves[loaded.label] = curve
        details = {
            "logit_scale": encoder.logit_scale,
            "images": len(emb.images),
            "captions": len(emb.captions),
            "label": loaded.label,
        }
        first = first or base.picture_path(args, "logit-distribution", source.slug, loaded)
        pending.append((loaded, ld.metrics_of(curve), details))
    png = ld.plot(curves, first, title=f"text-to-image on {source.slug}: mean sorted probabilities")
    options = {**base.data_options(args, source), "top": args.top}
    for loaded, metrics, details in pending:
        details = {**details, "curves": curves}
        base.write(
            args, "logit-distribution", source.slug, loaded, metrics, options, details, [png]
        )
    print(f"plot: {png}")
    base.print_table(
        f"mean sorted text-to-image probability on {source.slug}, %",
        [(lo.label, m) for lo, m, _ in pending],
        COLUMNS,
    )


TASK = base.Task("SoftCLIP Fig. 6: averaged sorted text-to-image probabilities", add_arguments, run)
