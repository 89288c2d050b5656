"""``alignclip eval instance-retrieval``: revisited Oxford5k / Paris6k, Easy / Medium / Hard
mAP."""

from __future__ import annotations

import argparse

from alignclip_plugins.evaluation.tasks import base

COLUMNS = ("easy_mAP", "medium_mAP", "hard_mAP")


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p)


def run(args: argparse.Namespace) -> None:
    from alignclip_plugins.evaluation import revisited

    gnd = revisited.find_ground_truth(args.data, args.dataset)
    dataset = revisited.load_dataset(gnd)
    slug = args.dataset_name or dataset.name
    rows = []
    for loaded in base.iter_models(args):
        metrics, details = revisited.evaluate(
            base.encoder(loaded, args), loaded.preprocess, dataset, args.batch_size, args.workers
        )
        base.write(args, "instance-retrieval", slug, loaded, metrics, {"data": str(gnd)}, details)
        rows.append((loaded.label, metrics))
    base.print_table(
        f"instance retrieval on {slug} ({len(dataset.qimlist)} queries, "
        f"{len(dataset.imlist)} images), mAP %",
        rows,
        COLUMNS,
    )


TASK = base.Task("revisited Oxford5k / Paris6k: Easy / Medium / Hard mAP", add_arguments, run)
