"""``alignclip captions convert``: a captioned image folder (Kaggle / clip_benchmark Flickr8k,
Flickr30k) into multi-caption webdataset shards in the Flickr8k layout.

Examples::

    # Kaggle's Flickr8k (Images/ + captions.txt), the official train / dev lists, 96 px
    alignclip captions convert data/flickr8k-kaggle --out data/flickr8k \\
        --split train=Flickr_8k.trainImages.txt --split val=Flickr_8k.devImages.txt \\
        --image-size 96 --resize-mode squash
    # clip_benchmark's layout: its karpathy files are the split lists (found by themselves)
    alignclip captions convert ~/.cache/clip_benchmark/flickr8k --out data/flickr8k
    # no split lists: a seeded 1,000-image val split
    alignclip captions convert data/flickr8k-kaggle --out data/flickr8k --val-size 1000
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

CAPTION_FILES = ("captions.txt", "Flickr8k.token.txt", "results.csv")
IMAGE_DIRS = ("Images", "Flicker8k_Dataset", "Flickr8k_Dataset", "flickr30k_images")
KARPATHY = "flickr8k_{}_karpathy.txt"


def _convert_parser(sub: argparse._SubParsersAction) -> None:
    from alignclip_plugins.captions.convert import DEFAULT_SHARD_SIZE, RESIZE_MODES

    p = sub.add_parser(
        "convert",
        help="a captioned image folder into multi-caption shards (Flickr8k layout)",
        description="Write OUT/<split>-NNNNNN.tar shards (KEY.jpg + KEY.txt with the image's "
        "captions, one a line), sizes.json and convert-summary.json. Finished shards are "
        "skipped on a rerun.",
    )
    p.add_argument(
        "source",
        type=Path,
        help="the dataset folder: Kaggle's (Images/ + captions.txt), clip_benchmark's (the "
        "images + flickr8k_<split>_karpathy.txt) or the original (Flicker8k_Dataset/ + "
        "Flickr8k.token.txt)",
    )
    p.add_argument("--out", required=True, type=Path, help="directory for the shards")
    p.add_argument(
        "--captions",
        type=Path,
        default=None,
        help=f"the annotation file (default: the first of {', '.join(CAPTION_FILES)} in SOURCE, "
        "else clip_benchmark's karpathy files)",
    )
    p.add_argument(
        "--images",
        type=Path,
        default=None,
        help=f"the images folder (default: SOURCE/{'|'.join(IMAGE_DIRS)}, else SOURCE)",
    )
    g = p.add_argument_group("splits (default: clip_benchmark's karpathy lists when present, "
                             "else every image in 'train')")  # fmt: skip
    g.add_argument(
        "--split",
        action="append",
        default=[],
        metavar="NAME=FILE",
        help="images of split NAME: a file naming one image a line, or an annotation file "
        "(repeat per split; images in no list are left out)",
    )
    g.add_argument(
        "--val-size",
        type=float,
        default=None,
        metavar="N|FRACTION",
        help="no split lists: N images (or this fraction) in 'val', the rest in 'train', by a "
        "seeded shuffle",
    )
    g.add_argument("--split-seed", type=int, default=0, help="seed of --val-size's shuffle")
    g = p.add_argument_group("shards and images")
    g.add_argument("--shard-size", type=int, default=DEFAULT_SHARD_SIZE, help="samples a shard")
    g.add_argument(
        "--image-size",
        type=int,
        default=None,
        metavar="PX",
        help="resize to PX and re-encode as JPEG (default: copy the files as they are)",
    )
    g.add_argument(
        "--resize-mode",
        choices=RESIZE_MODES,
        default="keep_ratio",
        help="keep_ratio: shorter side PX; center_crop: PX x PX centre; squash: PX x PX",
    )
    g.add_argument("--quality", type=int, default=90, help="JPEG quality with --image-size")
    p.add_argument("--overwrite", action="store_true", help="rewrite shards made differently")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def _first(paths) -> Path | None:
    return next((p for p in paths if p.exists()), None)


def run_convert(args: argparse.Namespace) -> int:
    from alignclip_plugins.captions.convert import (
        ImageOptions,
        convert,
        format_summary,
        plan_splits,
    )
    from alignclip_plugins.captions.sources import read_annotations, read_split_list

    source: Path = args.source
    if not source.is_dir():
        raise ValueError(f"{source} is not a directory")
    splits: dict[str, list[str]] = {}
    for item in args.split:
        name, eq, path = item.partition("=")
        if not eq or not name or not path:
            raise ValueError(f"--split {item!r}: write it as NAME=FILE, e.g. train=train.txt")
        if name in splits:
            raise ValueError(f"--split {name} given twice")
        splits[name] = read_split_list(path)
    if splits and args.val_size is not None:
        raise ValueError("give split lists (--split) or --val-size, not both")
    karpathy = {s: source / KARPATHY.format(s) for s in ("train", "val", "test")}
    has_karpathy = all(p.exists() for p in karpathy.values())
    if not splits and args.val_size is None and has_karpathy:
        splits = {s: read_split_list(p) for s, p in karpathy.items()}
        print(f"splits: clip_benchmark's {', '.join(p.name for p in karpathy.values())}")
    annotation = args.captions or _first(source / n for n in CAPTION_FILES)
    if annotation is not None:
        annotations = read_annotations(annotation)
    elif has_karpathy:  # clip_benchmark's files hold the captions too
        annotations = read_annotations(karpathy["train"])
        for split in ("val", "test"):
            more = read_annotations(karpathy[split])
            annotations.captions.update(more.captions)
            annotations.bad_lines += more.bad_lines
    else:
        raise ValueError(
            f"no annotation file in {source} (looked for {', '.join(CAPTION_FILES)} and "
            f"{KARPATHY.format('<split>')}); give --captions FILE"
        )
    images = args.images or _first(source / n for n in IMAGE_DIRS) or source
    plan = plan_splits(annotations, images, splits or None, args.val_size, args.split_seed)
    if not any(plan.splits.values()):
        raise ValueError(
            f"none of the {len(annotations.captions):,} images of {annotations.path} is in "
            f"{images} with a caption (e.g. {next(iter(annotations.captions), '?')}); check "
            "--images"
        )
    for line in annotations.bad_lines[:10]:
        print(f"skipped: {line}", file=sys.stderr)
    if not splits and args.val_size is None:
        print("note: no split lists and no --val-size: every image goes to 'train'")
    summary = convert(
        plan,
        args.out,
        ImageOptions(args.image_size, args.resize_mode, args.quality),
        shard_size=args.shard_size,
        overwrite=args.overwrite,
        progress=not args.no_progress,
        source={
            "annotations": str(annotations.path),
            "format": annotations.format,
            "images": str(images),
            "bad_annotation_lines": len(annotations.bad_lines),
        },
    )
    print(format_summary(summary))
    print(f"shards, sizes.json and convert-summary.json in {args.out}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alignclip captions``."""
    parser = argparse.ArgumentParser(
        prog="alignclip captions",
        description="Captioned image folders (Kaggle / clip_benchmark Flickr8k, Flickr30k) "
        "into multi-caption webdataset shards in the Flickr8k layout.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    _convert_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        return run_convert(args)
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished shards are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
