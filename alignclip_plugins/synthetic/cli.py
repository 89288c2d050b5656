"""``alignclip synth``: generate the embedded synthetic dataset from the command line."""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields

from alignclip_plugins.synthetic.classes import NUM_CLASSES
from alignclip_plugins.synthetic.config import SPLITS, SynthConfig
from alignclip_plugins.synthetic.generation import run_generation
from alignclip_plugins.synthetic.manifest import SyntheticDataError
from alignclip_plugins.synthetic.statistics import format_statistics

# one help line per SynthConfig field; the option is --<field-with-dashes>, the default the
# field's (docs/synthetic.md says why each default is what it is)
HELP: dict[str, str] = {
    "seed": "random seed (the class frequencies, scenes and captions)",
    "train_samples": "training image-caption pairs",
    "shard_size": "samples per tar shard",
    "image_size": "side of the square images in pixels",
    "zipf": "Zipf exponent of the class frequencies (0 = uniform)",
    "count_weights": "relative frequencies of images with 1, 2, ... objects (comma-separated)",
    "mention": "chance that a noisy training caption names each object class of its image",
    "colour_mention": "chance that a caption's mention names the colour (else the shape only)",
    "mismatch": "fraction of training pairs captioned with another image's caption",
    "duplicates": "fraction of training scenes repeating an earlier scene's objects",
    "zeroshot_per_class": "zero-shot images per class (one object each)",
    "retrieval_samples": "retrieval pairs (clean captions naming every object)",
    "tail_fraction": "fraction of classes, the least frequent in training, marked as tail",
}


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``alignclip synth``: one option per SynthConfig field."""
    parser = argparse.ArgumentParser(
        prog="alignclip synth",
        description="Generate synthetic image-caption webdataset shards (train, retrieval, "
        "zero-shot) with long-tailed object classes. Deterministic per seed; a rerun "
        "resumes an interrupted generation.",
    )
    parser.add_argument("--out", required=True, help="output directory")
    default = SynthConfig()
    for f in fields(SynthConfig):
        value = getattr(default, f.name)
        parser.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=str if isinstance(value, tuple) else type(value),
            default=value,
            help=f"{HELP[f.name]} (default: {_shown(value)})",
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
        config = SynthConfig(**{f.name: getattr(args, f.name) for f in fields(SynthConfig)})
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
    print(format_statistics(report.statistics))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
