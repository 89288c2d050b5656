"""``alignclip eval zeroshot``: zero-shot classification (top-1, top-5, tail-class top-1)."""

from __future__ import annotations

import argparse
import sys

from alignclip_plugins.evaluation.tasks import base
from alignclip_plugins.evaluation.tasks.base import EvalError

COLUMNS = ("top1", "top5", "tail_top1", "mean_per_class_recall")


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p)
    p.add_argument(
        "--classnames", default=None,
        help="class names, one a line in label order (default: the dataset's, classnames.txt "
        "next to webdataset shards, or the folder names)",
    )  # fmt: skip
    p.add_argument(
        "--prototypes", choices=("templates", "descriptions", "both"), default="templates"
    )
    p.add_argument(
        "--templates", default="auto",
        help="openai | simple | dataset | FILE (one template with {} a line); auto: the "
        "dataset's own templates when it has them, else openai",
    )  # fmt: skip
    p.add_argument(
        "--descriptions", default=None, help="visual descriptions JSON (alignclip describe)"
    )
    p.add_argument(
        "--tail", default=None,
        help="tail classes: a file of class names, classes.json with 'tail' flags, or an "
        "'alignclip objects stats' vocabulary",
    )  # fmt: skip
    p.add_argument(
        "--attributes", default=None,
        help="coarser class attributes, JSON {names: [...], attributes: {NAME: [value per "
        "name]}} (the embedded dataset's attributes.json): reports NAME_top1, how often the "
        "top-1 class has the target's value",
    )  # fmt: skip


def resolve_templates(spec: str, source) -> list | dict:
    """The prompt templates ``--templates`` means for ``source``."""
    from alignclip_plugins.evaluation.benchmarks import BraceTemplate
    from alignclip_plugins.evaluation.prototypes import load_templates

    own = source.templates
    if spec in ("auto", "dataset"):
        if own:
            if isinstance(own, dict):
                return {str(k): list(v) for k, v in own.items()}
            return [BraceTemplate(t) if "{c}" in t else t for t in own]
        if spec == "dataset":
            raise EvalError(
                f"{source.where} has no prompt templates of its own; pass --templates "
                f"openai|simple|FILE"
            )
        return load_templates("openai")
    try:
        return load_templates(spec)
    except ValueError as e:
        raise EvalError(str(e)) from e


def build_prompts(
    args: argparse.Namespace, classnames: list[str], templates: list | dict
) -> list[list[str]]:
    """Each class's prompts from ``--prototypes`` (templates, descriptions or both)."""
    from alignclip_plugins.descriptions.generate import load_descriptions
    from alignclip_plugins.evaluation.prototypes import class_prompts

    descriptions = load_descriptions(args.descriptions) if args.descriptions else None
    if isinstance(templates, dict):  # class-specific prompts (CuPL-style dataset templates)
        missing = [c for c in classnames if not templates.get(c)]
        if missing and args.prototypes != "descriptions":
            raise EvalError(
                f"the dataset's class-specific prompts lack {len(missing)} classes, e.g. "
                f"{missing[0]!r}"
            )
        own = [list(templates.get(c, [])) for c in classnames]
        if args.prototypes == "templates":
            return own
        desc = class_prompts(
            classnames,
            "descriptions",
            descriptions=descriptions,
            descriptions_path=args.descriptions,
        )
        return desc if args.prototypes == "descriptions" else [a + b for a, b in zip(own, desc)]
    return class_prompts(
        classnames, args.prototypes, templates, descriptions, descriptions_path=args.descriptions
    )


def run(args: argparse.Namespace) -> None:
    from alignclip_plugins.evaluation import zeroshot
    from alignclip_plugins.evaluation.datasets import open_labelled, read_attributes, read_tail

    source = open_labelled(
        args.data, args.dataset, args.split, args.classnames, args.annotation_file,
        args.download, args.dataset_name,
    )  # fmt: skip
    classnames = source.classnames
    templates = resolve_templates(args.templates, source)
    prompts = build_prompts(args, classnames, templates)
    tail = read_tail(args.tail, classnames) if args.tail else None
    if tail is not None and not any(tail):
        print(f"warning: no class of the dataset is a tail class in {args.tail}", file=sys.stderr)
    attributes = read_attributes(args.attributes, classnames) if args.attributes else None
    options = {
        **base.data_options(args, source),
        "prototypes": args.prototypes,
        "templates": args.templates,
        "num_templates": len(templates) if isinstance(templates, list) else "per class",
        "descriptions": args.descriptions,
        "tail": args.tail,
        "attributes": args.attributes,
        "classnames": args.classnames,
        "num_classes": len(classnames),
    }
    rows = []
    for loaded in base.iter_models(args):
        encoder = base.encoder(loaded, args)
        classifier = zeroshot.text_prototypes(
            loaded.model, loaded.tokenizer, prompts, encoder.device
        )
        batches = source.batches(
            loaded.preprocess, args.batch_size, args.workers, desc=f"{source.slug} {loaded.label}"
        )
        metrics = zeroshot.evaluate_batches(
            encoder, classifier, batches, tail=tail, attributes=attributes, where=source.where
        )
        n = int(metrics.pop("n"))
        details = {"images": n, "tail_classes": sum(tail) if tail else 0}
        base.write(args, "zeroshot", source.slug, loaded, metrics, options, details)
        rows.append((loaded.label, metrics))
    base.print_table(
        f"zero-shot on {source.slug} ({n} images, {len(classnames)} classes, {args.prototypes}), %",
        rows,
        COLUMNS,
    )


TASK = base.Task("zero-shot classification: top-1, top-5, tail-class top-1", add_arguments, run)
