"""``alignclip eval retrieval``: image-text retrieval, R@1/5/10 in both directions."""

from __future__ import annotations

import argparse

from alignclip_plugins.evaluation.tasks import base

COLUMNS = tuple(f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10))


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p)


def run(args: argparse.Namespace) -> None:
    from alignclip_plugins.evaluation import retrieval

    source = base.open_captioned(args)
    rows = []
    for loaded in base.iter_models(args):
        _, emb = base.embed_captioned(args, source, loaded)
        metrics = retrieval.recall_metrics(emb, (1, 5, 10))
        details = {"images": len(emb.images), "captions": len(emb.captions)}
        options = base.data_options(args, source)
        base.write(args, "retrieval", source.slug, loaded, metrics, options, details)
        rows.append((loaded.label, metrics))
    base.print_table(
        f"retrieval on {source.slug} ({details['images']} images, {details['captions']} "
        f"captions), %",
        rows,
        COLUMNS,
    )


TASK = base.Task("image-text retrieval: R@1/5/10 both directions", add_arguments, run)
