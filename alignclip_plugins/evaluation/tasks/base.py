"""What every ``alignclip eval`` task is built on.

* :class:`Task`: a task's entry in the command's table (its help line, its options, its run);
* :func:`add_common_arguments`: the model, run and data options every task takes;
* :func:`evaluating`: the frame of every run (the device, the models checked up front);
* :func:`check_models` / :func:`iter_models`: the ``--checkpoint`` / ``--pretrained`` models
  to evaluate, checked up front, then loaded one at a time;
* :func:`write` / :func:`picture_path` / :func:`print_table`: one JSON result per model next
  to its run (:mod:`alignclip_plugins.evaluation.results`), pictures, the printed table.

This module imports no torch: ``alignclip eval --help`` stays fast.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class EvalError(Exception):
    """A usage or data problem, reported as one line without a traceback."""


@dataclass(frozen=True)
class Task:
    """One ``alignclip eval TASK``: its help line, what it adds to its parser, its run."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], None]


def add_common_arguments(p: argparse.ArgumentParser, data: bool = True) -> None:
    """The ``model`` and ``run`` option groups, and with ``data`` the ``data`` group."""
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


# --------------------------------------------------------------------------- models


@contextmanager
def evaluating(args: argparse.Namespace) -> Iterator[None]:
    """The frame of a task's run: ``--device`` defaulted (cuda when present), denormals
    flushed on CPU, the model options checked (:func:`check_models`)."""
    import torch

    from alignclip_plugins.evaluation.encoder import default_device

    args.device = args.device or default_device()
    # Denormal intermediates slow CPU matmuls several-fold; flushing them to zero changes
    # nothing measurable in an evaluation. Restored on the way out.
    flushed = torch.device(args.device).type == "cpu" and torch.set_flush_denormal(True)
    try:
        check_models(args)
        yield
    finally:
        if flushed:
            torch.set_flush_denormal(False)


def check_models(args: argparse.Namespace) -> None:
    """Check the model options before anything is loaded; set ``args.labels`` (one per model)
    and ``args.out_dirs`` (label -> results directory, None: next to the checkpoint)."""
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


def iter_models(args: argparse.Namespace) -> Iterator:
    """Each model to evaluate (a ``LoadedModel`` labelled from ``args.labels``), loaded one at
    a time (the previous one is released)."""
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


def encoder(loaded, args: argparse.Namespace):
    """The :class:`~alignclip_plugins.evaluation.encoder.Encoder` of a loaded model under
    ``--device`` and ``--precision``."""
    from alignclip_plugins.evaluation.encoder import Encoder

    amp = {"auto": None, "amp": True, "fp32": False}[args.precision]
    return Encoder(loaded.model, loaded.tokenizer, args.device, amp=amp)


# --------------------------------------------------------------------------- data


def open_captioned(args: argparse.Namespace):
    """The captioned image source of the ``data`` options (retrieval-style tasks)."""
    from alignclip_plugins.evaluation.datasets import open_captioned as open_source

    return open_source(
        args.data, args.dataset, args.split, args.annotation_file, args.download, args.dataset_name
    )


def embed_captioned(args: argparse.Namespace, source, loaded, thumbnails: int = 0):
    """``(encoder, Embeddings)`` of every image and caption of ``source`` under ``loaded``;
    ``thumbnails``: keep a thumbnail of this size (px) per image (0: none)."""
    from alignclip_plugins.evaluation import retrieval

    enc = encoder(loaded, args)
    batches = source.batches(
        loaded.preprocess, args.batch_size, args.workers, thumbnails=thumbnails,
        desc=f"{source.slug} {loaded.label}",
    )  # fmt: skip
    return enc, retrieval.embed(enc, batches)


def data_options(args: argparse.Namespace, source) -> dict:
    """The ``options`` a result records about its data."""
    return {"data": str(args.data), "split": args.split, "source": source.where, **source.info}


# --------------------------------------------------------------------------- results


def write(
    args: argparse.Namespace,
    task: str,
    dataset: str | None,
    loaded,
    metrics: dict,
    options: dict,
    details: dict | None = None,
    artifacts: Sequence[str | os.PathLike] | None = None,
):
    """Write one model's result file (its path printed) and return the ``EvalResult``."""
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


def picture_path(args: argparse.Namespace, task: str, dataset: str | None, loaded) -> Path:
    """Where a picture of all models goes: ``--out``, else the first model's results."""
    from alignclip_plugins.evaluation.results import result_name, results_dir

    return results_dir(loaded.checkpoint, args.out) / result_name(task, dataset, ".png")


def print_table(title: str, rows, columns: Sequence[str] = ()) -> None:
    """Print ``rows`` (``[(label, metrics)]``) under ``title``: the ``columns`` some row has,
    in that order (all metrics when none has any)."""
    from alignclip_plugins.evaluation.results import format_table

    cols = [c for c in columns if any(c in m for _, m in rows)]
    print(f"\n{title}\n" + format_table(rows, cols or None))
