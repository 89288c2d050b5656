"""``alignclip synth``: generate the embedded synthetic dataset from the command line."""

from __future__ import annotations

import argparse
import sys

from alignclip_plugins.synthetic.classes import NUM_CLASSES
from alignclip_plugins.synthetic.config import SPLITS, SynthConfig
from alignclip_plugins.synthetic.generation import run_generation
from alignclip_plugins.synthetic.manifest import SyntheticDataError

_DEFAULT = SynthConfig()


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``alignclip synth``."""
    parser = argparse.ArgumentParser(
        prog="alignclip synth",
        description="Generate synthetic image-caption webdataset shards (train, retrieval, "
        "zero-shot) with long-tailed object classes. Deterministic per seed; a rerun "
        "resumes an interrupted generation.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    d = _DEFAULT
    parser.add_argument("--out", required=True, default=argparse.SUPPRESS, help="output directory")
    parser.add_argument("--seed", type=int, default=d.seed, help="random seed")
    parser.add_argument(
        "--train-samples", type=int, default=d.train_samples, help="training image-caption pairs"
    )
    parser.add_argument(
        "--shard-size", type=int, default=d.shard_size, help="samples per tar shard"
    )
    parser.add_argument(
        "--image-size", type=int, default=d.image_size, help="side of the square images in pixels"
    )
    parser.add_argument(
        "--zipf",
        type=float,
        default=d.zipf,
        help="Zipf exponent of the class frequencies (0 = uniform)",
    )
    parser.add_argument(
        "--mismatch",
        type=float,
        default=d.mismatch,
        help="fraction of training pairs captioned with another image's caption",
    )
    parser.add_argument(
        "--zeroshot-per-class",
        type=int,
        default=d.zeroshot_per_class,
        help="zero-shot images per class (one object each)",
    )
    parser.add_argument(
        "--retrieval-samples",
        type=int,
        default=d.retrieval_samples,
        help="retrieval pairs (clean captions naming every object)",
    )
    parser.add_argument(
        "--tail-fraction",
        type=float,
        default=d.tail_fraction,
        help="fraction of classes, the least frequent in training, marked as tail",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace data generated with other options in --out",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str]) -> int:
    """Run ``alignclip synth``; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        config = SynthConfig(
            seed=args.seed,
            train_samples=args.train_samples,
            shard_size=args.shard_size,
            image_size=args.image_size,
            zipf=args.zipf,
            mismatch=args.mismatch,
            zeroshot_per_class=args.zeroshot_per_class,
            retrieval_samples=args.retrieval_samples,
            tail_fraction=args.tail_fraction,
        )
    except ValueError as error:
        parser.error(str(error))
    try:
        report = run_generation(
            args.out, config, overwrite=args.overwrite, progress=not args.no_progress
        )
    except SyntheticDataError as error:
        print(f"alignclip synth: error: {error}", file=sys.stderr)
        return 1
    splits = report.manifest["splits"]
    print(f"synthetic dataset in {args.out} ({report.seconds:.1f} s)")
    for split in SPLITS:
        info = splits[split]
        print(f"  {split:<10} {info['num_samples']:>7} samples in {info['num_shards']} shard(s)")
    print(
        f"  {NUM_CLASSES} classes, {report.tail_classes} tail; shards written "
        f"{report.shards_written}, reused {report.shards_reused}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
