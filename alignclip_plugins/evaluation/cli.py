"""``alignclip eval TASK``: evaluate checkpoints on the papers' downstream tasks.

Every task loads each ``--checkpoint`` (this project's, with plugin modules skipped, or a
plain open_clip one; or open_clip's ``--pretrained`` weights), runs, writes one JSON result
per checkpoint next to its run (:mod:`alignclip_plugins.evaluation.results`) and prints a
short table. See docs/evaluation.md for the datasets' layouts.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

TASKS = {
    "zeroshot": "zero-shot classification: top-1, top-5, tail-class top-1",
    "retrieval": "image-text retrieval: R@1/5/10 both directions",
    "instance-retrieval": "revisited Oxford5k / Paris6k: Easy / Medium / Hard mAP",
    "copy-detection": "INRIA Copydays 'strong': mAP",
    "logit-distribution": "SoftCLIP Fig. 6: averaged sorted text-to-image probabilities",
    "retrieval-grid": "text-to-image top-10 retrieval grids (PNG)",
    "gradcam": "Grad-CAM heatmaps of caption words (PNG)",
}

COLUMNS = {
    "zeroshot": ("top1", "top5", "tail_top1", "mean_per_class_recall"),
    "retrieval": tuple(
        f"{d}_R@{k}" for d in ("image_to_text", "text_to_image") for k in (1, 5, 10)
    ),
    "instance-retrieval": ("easy_mAP", "medium_mAP", "hard_mAP"),
    "copy-detection": ("mAP",),
    "logit-distribution": ("prob@1", "prob@2", "prob@3", "prob@5", "prob@10", "prob@50"),
}

STOP_WORDS = frozenset(
    "a an the and or of in on at to with by for from is are was were be been it its this that "
    "these those there their his her some two three one while near next into onto over under "
    "up down out as very".split()
)


class EvalError(Exception):
    """A usage or data problem, reported as one line without a traceback."""


def _common(p: argparse.ArgumentParser, data: bool = True) -> None:
    g = p.add_argument_group("model")
    g.add_argument(
        "--checkpoint", nargs="+", type=Path, default=[],
        help="checkpoint file(s): open_clip_train's epoch_N.pt (this project's or plain) or a "
        "bare state dict; several are evaluated one after the other",
    )  # fmt: skip
    g.add_argument(
        "--model", nargs="+", default=[],
        help="open_clip model name or local-dir:PATH, one for all checkpoints or one each "
        "(default: the run's --model from its params.txt)",
    )  # fmt: skip
    g.add_argument(
        "--pretrained", default=None,
        help="open_clip pretrained tag (e.g. openai) instead of --checkpoint; must be cached "
        "locally when offline",
    )  # fmt: skip
    g.add_argument("--label", nargs="+", default=[], help="names of the models in tables/plots")
    g.add_argument("--cache-dir", default=None, help="open_clip cache directory for --pretrained")
    g = p.add_argument_group("run")
    g.add_argument("--device", default=None, help="cuda / cpu (default: cuda when present)")
    g.add_argument(
        "--precision", choices=("auto", "amp", "fp32"), default="auto",
        help="amp = fp16 autocast (default on CUDA), fp32 (default on CPU)",
    )  # fmt: skip
    g.add_argument("--batch-size", type=int, default=128)
    g.add_argument(
        "--workers", type=int, default=min(4, os.cpu_count() or 1), help="data loading processes"
    )
    g.add_argument(
        "--out", type=Path, default=None,
        help="directory for the results (default: <run>/evals/ or <checkpoint stem>.evals/)",
    )  # fmt: skip
    g.add_argument(
        "--dataset-name", default=None, help="dataset slug in result names (default: derived)"
    )
    if data:
        g = p.add_argument_group("data")
        g.add_argument(
            "--data", required=True,
            help="dataset root (clip_benchmark layout), class folder, or webdataset shards "
            "(brace pattern or directory of .tar)",
        )  # fmt: skip
        g.add_argument(
            "--dataset", default=None,
            help="clip_benchmark dataset (imagenet, pets, dtd, food101, flowers102, sun397, "
            "caltech101, flickr30k, mscoco, wds/NAME, ...); default: inferred from --data",
        )  # fmt: skip
        g.add_argument("--split", default="test")
        g.add_argument(
            "--annotation-file", default=None, help="Flickr30K / COCO captions file override"
        )
        g.add_argument(
            "--download", action="store_true",
            help="let clip_benchmark download a missing dataset (needs the network)",
        )  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignclip eval",
        description="Evaluate checkpoints on downstream tasks; results go next to each run.",
    )
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    p = sub.add_parser("zeroshot", help=TASKS["zeroshot"])
    _common(p)
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

    p = sub.add_parser("retrieval", help=TASKS["retrieval"])
    _common(p)

    p = sub.add_parser("instance-retrieval", help=TASKS["instance-retrieval"])
    _common(p)

    p = sub.add_parser("copy-detection", help=TASKS["copy-detection"])
    _common(p)
    p.add_argument("--distractors", type=Path, default=None, help="folder of distractor images")
    p.add_argument(
        "--max-rank", type=int, default=None,
        help="score only the top N results per query (DINO's evaluation uses 20; default: all)",
    )  # fmt: skip

    p = sub.add_parser("logit-distribution", help=TASKS["logit-distribution"])
    _common(p)
    p.add_argument("--top", type=int, default=50, help="ranks to keep (default 50)")

    p = sub.add_parser("retrieval-grid", help=TASKS["retrieval-grid"])
    _common(p)
    p.add_argument("--query", nargs="+", default=[], help="query captions")
    p.add_argument("--queries", type=Path, default=None, help="file of query captions, one a line")
    p.add_argument(
        "--num-queries", type=int, default=5,
        help="without --query/--queries: this many dataset captions, drawn with --seed",
    )  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=10, help="images per query (default 10)")
    p.add_argument("--thumbnail", type=int, default=128, help="thumbnail size in px")

    p = sub.add_parser("gradcam", help=TASKS["gradcam"])
    _common(p, data=False)
    p.add_argument("--image", nargs="+", type=Path, required=True, help="image file(s)")
    p.add_argument(
        "--caption", nargs="+", required=True, help="one caption per image (or one for all)"
    )
    p.add_argument(
        "--word", nargs="+", default=[],
        help="words to localise (default: each caption's content words)",
    )  # fmt: skip
    p.add_argument(
        "--target", choices=("word", "context"), default="word",
        help="word: similarity to the word alone; context: caption minus caption without it",
    )  # fmt: skip
    p.add_argument(
        "--word-template", default="{}", help="prompt for --target word, e.g. 'a photo of {}.'"
    )
    return parser


# --------------------------------------------------------------------------- models


def iter_models(args) -> Iterator:
    """Each model to evaluate, loaded one at a time (the previous one is released)."""
    import torch

    from alignclip_plugins.evaluation.checkpoint import load_model

    checkpoints: list[Path | None] = list(args.checkpoint) or [None]
    models = list(args.model) or [None]
    for i, ckpt in enumerate(checkpoints):
        loaded = load_model(
            models[i] if len(models) > 1 else models[0],
            checkpoint=ckpt,
            pretrained=args.pretrained if ckpt is None else None,
            device=args.device,
            cache_dir=args.cache_dir,
        )
        loaded.label = args.labels[i]
        yield loaded
        del loaded
        if torch.cuda.is_available():
            torch.cuda.empty_cache()


def _check_models(args) -> None:
    n = len(args.checkpoint) or 1
    if args.checkpoint and args.pretrained:
        raise EvalError("give --checkpoint or --pretrained, not both")
    if not args.checkpoint and not args.pretrained:
        raise EvalError("give --checkpoint FILE... (or --pretrained TAG with --model)")
    if args.pretrained and not args.model:
        raise EvalError("--pretrained needs --model")
    if args.pretrained and args.out is None:
        raise EvalError("--pretrained weights have no run to write results into: pass --out DIR")
    if len(args.model) not in (0, 1, n):
        raise EvalError(f"{len(args.model)} --model values for {n} checkpoints: give one or {n}")
    if args.label and len(args.label) != n:
        raise EvalError(f"{len(args.label)} --label values for {n} models")
    missing = [str(c) for c in args.checkpoint if not Path(c).is_file()]
    if missing:
        raise EvalError(f"checkpoint {missing[0]} does not exist")
    from alignclip_plugins.evaluation.checkpoint import default_label
    from alignclip_plugins.evaluation.results import slug

    models = list(args.model) or [None]
    args.labels = list(args.label) or [
        default_label(
            Path(c).resolve() if c else None,
            str(models[i] if len(models) > 1 else models[0]),
            args.pretrained,
        )
        for i, c in enumerate(list(args.checkpoint) or [None])
    ]
    # --out with several models: one sub-directory each, named for its label
    args.out_dirs = {}
    for label in args.labels:
        if args.out is None or n == 1:
            args.out_dirs[label] = args.out
            continue
        name, k = slug(label), 2
        while args.out / name in args.out_dirs.values():
            name, k = f"{slug(label)}_{k}", k + 1
        args.out_dirs[label] = args.out / name
    if len(set(args.labels)) != len(args.labels):
        raise EvalError(f"two models share the label {args.labels}: name them with --label")
    if not args.model:
        from alignclip_plugins.evaluation.checkpoint import read_run_params

        unknown = [str(c) for c in args.checkpoint if not read_run_params(c).get("model")]
        if unknown:
            raise EvalError(
                f"pass --model: {unknown[0]} is not inside a training run with a params.txt, "
                f"so its architecture is unknown"
            )


def _encoder(loaded, args):
    from alignclip_plugins.evaluation.encoder import Encoder

    amp = {"auto": None, "amp": True, "fp32": False}[args.precision]
    return Encoder(loaded.model, loaded.tokenizer, args.device, amp=amp)


# --------------------------------------------------------------------------- data


def _captioned(args):
    from alignclip_plugins.evaluation.datasets import open_captioned

    return open_captioned(
        args.data, args.dataset, args.split, args.annotation_file, args.download, args.dataset_name
    )


# --------------------------------------------------------------------------- prompts


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


def build_prompts(args, classnames: list[str], templates: list | dict) -> list[list[str]]:
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


# --------------------------------------------------------------------------- results


def _write(
    args, task: str, dataset: str | None, loaded, metrics, options, details=None, artifacts=None
):
    from alignclip_plugins.evaluation.results import EvalResult, result_path, write_result

    result = EvalResult(
        task=task,
        dataset=dataset,
        checkpoint=str(loaded.checkpoint) if loaded.checkpoint else None,
        model=loaded.name,
        epoch=loaded.epoch,
        metrics=metrics,
        options={**options, **({"pretrained": loaded.pretrained} if loaded.pretrained else {})},
        details=details or {},
        artifacts=[str(a) for a in artifacts or []],
    )
    path = write_result(
        result, result_path(task, dataset, loaded.checkpoint, args.out_dirs[loaded.label])
    )
    print(f"{loaded.label}: wrote {path}")
    return result


def _picture_path(args, task: str, dataset: str | None, loaded) -> Path:
    """Where a picture of all models goes: ``--out``, else the first model's results."""
    from alignclip_plugins.evaluation.results import result_name, results_dir

    return results_dir(loaded.checkpoint, args.out) / result_name(task, dataset, ".png")


def _table(task: str, title: str, rows) -> None:
    from alignclip_plugins.evaluation.results import format_table

    cols = [c for c in COLUMNS.get(task, ()) if any(c in m for _, m in rows)]
    print(f"\n{title}\n" + format_table(rows, cols or None))


def _data_options(args, source) -> dict:
    return {"data": str(args.data), "split": args.split, "source": source.where, **source.info}


# --------------------------------------------------------------------------- tasks


def run_zeroshot(args) -> None:
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
        **_data_options(args, source),
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
    for loaded in iter_models(args):
        encoder = _encoder(loaded, args)
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
        _write(args, "zeroshot", source.slug, loaded, metrics, options, details)
        rows.append((loaded.label, metrics))
    _table(
        "zeroshot",
        f"zero-shot on {source.slug} ({n} images, {len(classnames)} classes, {args.prototypes}), %",
        rows,
    )


def _embed_captioned(args, source, loaded, thumbnails: int = 0):
    from alignclip_plugins.evaluation import retrieval

    encoder = _encoder(loaded, args)
    batches = source.batches(
        loaded.preprocess, args.batch_size, args.workers, thumbnails=thumbnails,
        desc=f"{source.slug} {loaded.label}",
    )  # fmt: skip
    return encoder, retrieval.embed(encoder, batches)


def run_retrieval(args) -> None:
    from alignclip_plugins.evaluation import retrieval

    source = _captioned(args)
    rows = []
    for loaded in iter_models(args):
        _, emb = _embed_captioned(args, source, loaded)
        metrics = retrieval.recall_metrics(emb, (1, 5, 10))
        details = {"images": len(emb.images), "captions": len(emb.captions)}
        _write(
            args, "retrieval", source.slug, loaded, metrics, _data_options(args, source), details
        )
        rows.append((loaded.label, metrics))
    _table(
        "retrieval",
        f"retrieval on {source.slug} ({details['images']} images, {details['captions']} "
        f"captions), %",
        rows,
    )


def run_instance_retrieval(args) -> None:
    from alignclip_plugins.evaluation import revisited

    gnd = revisited.find_ground_truth(args.data, args.dataset)
    dataset = revisited.load_dataset(gnd)
    slug = args.dataset_name or dataset.name
    rows = []
    for loaded in iter_models(args):
        metrics, details = revisited.evaluate(
            _encoder(loaded, args), loaded.preprocess, dataset, args.batch_size, args.workers
        )
        _write(args, "instance-retrieval", slug, loaded, metrics, {"data": str(gnd)}, details)
        rows.append((loaded.label, metrics))
    _table(
        "instance-retrieval",
        f"instance retrieval on {slug} ({len(dataset.qimlist)} queries, "
        f"{len(dataset.imlist)} images), mAP %",
        rows,
    )


def run_copy_detection(args) -> None:
    from alignclip_plugins.evaluation import copydays

    slug = args.dataset_name or "copydays_strong"
    options = {
        "data": str(args.data),
        "distractors": str(args.distractors) if args.distractors else None,
        "max_rank": args.max_rank,
    }
    rows = []
    for loaded in iter_models(args):
        metrics, details = copydays.evaluate(
            _encoder(loaded, args), loaded.preprocess, args.data, args.distractors,
            args.max_rank, args.batch_size, args.workers,
        )  # fmt: skip
        _write(args, "copy-detection", slug, loaded, metrics, options, details)
        rows.append((loaded.label, metrics))
    _table(
        "copy-detection",
        f"copy detection on {slug} ({details['queries']} queries, {details['originals']} "
        f"originals, {details['distractors']} distractors), mAP %",
        rows,
    )


def run_logit_distribution(args) -> None:
    from alignclip_plugins.evaluation import logit_distribution as ld

    source = _captioned(args)
    curves, pending, first = {}, [], None
    for loaded in iter_models(args):
        encoder, emb = _embed_captioned(args, source, loaded)
        curve = ld.profile(emb, encoder.logit_scale, args.top)
        curves[loaded.label] = curve
        details = {
            "logit_scale": encoder.logit_scale,
            "images": len(emb.images),
            "captions": len(emb.captions),
            "label": loaded.label,
        }
        first = first or _picture_path(args, "logit-distribution", source.slug, loaded)
        pending.append((loaded, ld.metrics_of(curve), details))
    png = ld.plot(curves, first, title=f"text-to-image on {source.slug}: mean sorted probabilities")
    options = {**_data_options(args, source), "top": args.top}
    for loaded, metrics, details in pending:
        _write(
            args,
            "logit-distribution",
            source.slug,
            loaded,
            metrics,
            options,
            {**details, "curves": curves},
            [png],
        )
    print(f"plot: {png}")
    _table(
        "logit-distribution",
        f"mean sorted text-to-image probability on {source.slug}, %",
        [(lo.label, m) for lo, m, _ in pending],
    )


def run_retrieval_grid(args) -> None:
    from alignclip_plugins.evaluation import retrieval_grid as rg

    source = _captioned(args)
    texts = list(args.query)
    if args.queries:
        try:
            texts += [
                t.strip()
                for t in args.queries.read_text(encoding="utf-8").splitlines()
                if t.strip()
            ]
        except OSError as e:
            raise EvalError(f"cannot read --queries {args.queries}: {e}") from e
    per_model, pending, first = [], [], None
    queries: list[tuple[str, str | None]] | None = [(t, None) for t in texts] or None
    for loaded in iter_models(args):
        encoder, emb = _embed_captioned(args, source, loaded, thumbnails=args.thumbnail)
        if queries is None:
            queries = [
                (c, emb.keys[i]) for c, i in rg.pick_queries(emb, args.num_queries, args.seed)
            ]
        query_texts = [q for q, _ in queries]
        rows = rg.rank(
            emb,
            query_texts,
            encoder.texts(query_texts),
            [gt for _, gt in queries],
            args.top,
            loaded.label,
        )
        per_model.append(rows)
        first = first or _picture_path(args, "retrieval-grid", source.slug, loaded)
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
    options = {**_data_options(args, source), "top": args.top, "seed": args.seed}
    table = []
    for (loaded, details), rows in zip(pending, per_model):
        # dataset captions as queries: how often their own image is in the grid
        known = [r for r, (_, gt) in zip(rows, queries) if gt is not None]
        metrics = {}
        if known:
            metrics[f"query_hit@{args.top}"] = sum(any(r.correct) for r in known) / len(known)
        _write(args, "retrieval-grid", source.slug, loaded, metrics, options, details, [png])
        table.append((loaded.label, metrics))
    print(f"retrieval grid ({len(queries)} queries x {len(per_model)} models): {png}")
    if any(m for _, m in table):
        _table("retrieval-grid", f"queries whose own image is in their top {args.top}, %", table)


def _content_words(caption: str) -> list[str]:
    words = re.findall(r"[A-Za-z][A-Za-z'-]+", caption)
    return list(dict.fromkeys(w for w in words if w.lower() not in STOP_WORDS and len(w) > 2))


def run_gradcam(args) -> None:
    from PIL import Image

    from alignclip_plugins.evaluation import gradcam

    images, captions = list(args.image), list(args.caption)
    if len(captions) == 1:
        captions *= len(images)
    if len(captions) != len(images):
        raise EvalError(
            f"{len(captions)} --caption values for {len(images)} images: give one or {len(images)}"
        )
    missing = [str(i) for i in images if not i.is_file()]
    if missing:
        raise EvalError(f"image {missing[0]} does not exist")
    words = [list(args.word) or _content_words(c) for c in captions]
    empty = [c for c, w in zip(captions, words) if not w]
    if empty:
        raise EvalError(f"no content word in caption {empty[0]!r}; pass --word")
    slug = args.dataset_name
    rows, pending, first = [], [], None
    for loaded in iter_models(args):
        layer = gradcam.target_layer(loaded.model)
        scores = []
        for path, caption, ws in zip(images, captions, words):
            try:
                pil = Image.open(path).convert("RGB")
            except Exception as e:
                raise EvalError(f"cannot read image {path}: {e}") from e
            x = loaded.preprocess(pil)[None]
            maps, values = [], []
            for w in ws:
                cam, score = gradcam.word_heatmap(
                    loaded.model,
                    loaded.tokenizer,
                    x,
                    caption,
                    w,
                    args.target,
                    args.word_template,
                    layer,
                )
                maps.append(gradcam.upsample(cam, tuple(x.shape[-2:])))
                values.append(score)
            rows.append(
                gradcam.HeatmapRow(
                    loaded.label,
                    caption,
                    gradcam.display_image(loaded.preprocess, x[0]),
                    ws,
                    maps,
                    values,
                )
            )
            scores.append({"image": str(path), "caption": caption, "words": ws, "scores": values})
        first = first or _picture_path(args, "gradcam", slug, loaded)
        pending.append(
            (loaded, {"label": loaded.label, "layer": layer.description, "images": scores})
        )
    png = gradcam.render(rows, first)
    options = {"target": args.target, "word_template": args.word_template}
    for loaded, details in pending:
        _write(args, "gradcam", slug, loaded, {}, options, details, [png])
    print(f"Grad-CAM ({layer.description}): {png}")
    from alignclip_plugins.evaluation.results import format_table

    table = [
        (f"{r.label}: {Path(path).name}", dict(zip(r.words, r.scores)))
        for r, path in zip(rows, images * len(pending))
    ]
    print(f"\nGrad-CAM target scores ({args.target})\n" + format_table(table, percent=False))


RUNNERS = {
    "zeroshot": run_zeroshot,
    "retrieval": run_retrieval,
    "instance-retrieval": run_instance_retrieval,
    "copy-detection": run_copy_detection,
    "logit-distribution": run_logit_distribution,
    "retrieval-grid": run_retrieval_grid,
    "gradcam": run_gradcam,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import torch

    from alignclip_plugins.evaluation.encoder import default_device

    args.device = args.device or default_device()
    # Denormal intermediates slow CPU matmuls several-fold; flushing them to zero changes
    # nothing measurable in an evaluation. Restored on the way out.
    flushed = torch.device(args.device).type == "cpu" and torch.set_flush_denormal(True)
    try:
        _check_models(args)
        RUNNERS[args.task](args)
    except (EvalError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"alignclip eval {args.task}: error: {e}", file=sys.stderr)
        return 1
    finally:
        if flushed:
            torch.set_flush_denormal(False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
