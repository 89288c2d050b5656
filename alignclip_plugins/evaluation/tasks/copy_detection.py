"""``alignclip eval copy-detection``: INRIA Copydays 'strong' mAP."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignclip_plugins.evaluation.tasks import base

COLUMNS = ("mAP",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p)
    p.add_argument("--distractors", type=Path, default=None, help="folder of distractor images")
    p.add_argument(
        "--max-rank", type=int, default=None,
        help="score only the top N results per query (DINO's evaluation uses 20; default: all)",
    )  # fmt: skip


def run(args: argparse.Namespace) -> None:
    from alignclip_plugins.evaluation import copydays

    slug = args.dataset_name or "copydays_strong"
    options = {
        "data": str(args.data),
        "distractors": str(args.distractors) if args.distractors else None,
        "max_rank": args.max_rank,
    }
    rows = []
    for loaded in base.iter_models(args):
        metrics, details = copydays.evaluate(
            base.encoder(loaded, args), loaded.preprocess, args.data, args.distractors,
            args.max_rank, args.batch_size, args.workers,
        )  # fmt: skip
        base.write(args, "copy-detection", slug, loaded, metrics, options, details)
        rows.append((loaded.label, metrics))
    base.print_table(
        f"copy detection on {slug} ({details['queries']} queries, {details['originals']} "
        f"originals, {details['distractors']} distractors), mAP %",
        rows,
        COLUMNS,
    )


TASK = base.Task("INRIA Copydays 'strong': mAP", add_arguments, run)
