"""``alignclip rois``: write and check SoftCLIP's ROI sidecars.

* ``convert-vinvl``: VinVL / Oscar detector TSVs -> sidecars, joined to shards by key;
* ``oracle``: the embedded dataset's oracle-detector sidecars;
* ``check``: whether every shard of a ``--train-data`` pattern has a sidecar that training
  reads without a fault (see :mod:`alignclip_plugins.rois.check`).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alignclip_plugins.rois.storage import DEFAULT_MAX_ROIS, MAX_ROIS_LIMIT, RoiDataError


def _max_rois(value: str) -> int:
    k = int(value)
    if not 1 <= k <= MAX_ROIS_LIMIT:
        raise argparse.ArgumentTypeError(f"must be in [1, {MAX_ROIS_LIMIT}], got {k}")
    return k


def _add_shards(p: argparse.ArgumentParser) -> None:
    p.add_argument("--shards", nargs="+", required=True,
                   help="webdataset shards (brace patterns and '::' lists as --train-data)")  # fmt: skip


def _add_sidecar_dir(p: argparse.ArgumentParser, flag: str) -> None:
    p.add_argument(flag, type=Path, default=None,
                   help="sidecar directory (default: next to each shard)")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="alignclip rois", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    conv = sub.add_parser(
        "convert-vinvl",
        help="VinVL predictions.tsv (+ Oscar features TSV) -> ROI sidecars",
        description="Convert VinVL / Oscar detector outputs into per-shard ROI sidecars "
        "(top-K objects by confidence, 2052-d vectors, 'attribute class' tags). Finished "
        "shards are skipped on a rerun; bad rows are reported with their line numbers.",
    )
    _add_shards(conv)
    conv.add_argument("--predictions", nargs="+", required=True,
                      help="VinVL predictions.tsv file(s) (or Oscar label TSVs)")  # fmt: skip
    conv.add_argument("--features", nargs="+", default=[],
                      help="Oscar-style features TSV(s), row i = object i of the predictions")  # fmt: skip
    conv.add_argument("--hw", nargs="+", default=[],
                      help="VinVL hw.tsv file(s) with image sizes (else read from the shards)")  # fmt: skip
    _add_sidecar_dir(conv, "--out")
    conv.add_argument("--max-rois", type=_max_rois, default=DEFAULT_MAX_ROIS)
    conv.add_argument("--no-image-sizes", action="store_true",
                      help="never read image headers from the shards (rows or features must "
                      "then carry the boxes normalised)")  # fmt: skip
    conv.add_argument("--no-progress", action="store_true")

    oracle = sub.add_parser(
        "oracle",
        help="oracle-detector sidecars for the embedded synthetic dataset",
        description="Write ROI sidecars for the embedded dataset from its known boxes "
        "(see alignclip_plugins/rois/oracle.py for the fixed feature function).",
    )
    oracle.add_argument("data", type=Path, help="the dataset directory (alignclip synth --out)")
    _add_sidecar_dir(oracle, "--out")
    oracle.add_argument("--splits", default="train,retrieval")
    oracle.add_argument("--max-rois", type=_max_rois, default=DEFAULT_MAX_ROIS)
    oracle.add_argument("--no-progress", action="store_true")

    check = sub.add_parser(
        "check",
        help="verify the sidecars of a set of shards (everything training reads)",
        description="Verify every shard's ROI sidecar as training will read it: array files "
        "and their shapes against the sample count, every samples.jsonl line, every key of "
        "the shard, every ROI vector finite. Each fault names the file, line or row and key.",
    )
    _add_shards(check)
    _add_sidecar_dir(check, "--rois")
    check.add_argument("--no-progress", action="store_true")
    return parser


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    from alignclip_plugins.io.shards import expand_shards

    try:
        if args.command == "oracle":
            from alignclip_plugins.rois.oracle import write_oracle_rois

            splits = [s.strip() for s in args.splits.split(",") if s.strip()]
            done = write_oracle_rois(args.data, out=args.out, splits=splits,
                                     max_rois=args.max_rois, progress=not args.no_progress)  # fmt: skip
            print(f"oracle ROI sidecars: {done['written']} shard(s) written, "
                  f"{done['skipped']} already there")  # fmt: skip
            return 0
        if args.command == "check":
            from alignclip_plugins.rois.check import format_verification, verify_sidecars

            urls = expand_shards(args.shards, must_exist=False)  # sidecars may be elsewhere
            result = verify_sidecars(args.rois, urls, progress=not args.no_progress)
            if not result.ok:
                print(f"alignclip rois check: {format_verification(result)}", file=sys.stderr)
                return 1
            print(format_verification(result))
            return 0
        from alignclip_plugins.rois.vinvl import SUMMARY_FILE, Converter, update_summary

        shards = expand_shards(args.shards)
        converter = Converter(
            args.predictions, features=args.features, hw=args.hw, out=args.out,
            max_rois=args.max_rois, progress=not args.no_progress,
            image_sizes=not args.no_image_sizes,
        )  # fmt: skip
        report = converter.run(shards)
        out_dir = args.out or Path(shards[0]).parent
        summary = update_summary(out_dir / SUMMARY_FILE, report)
    except (RoiDataError, ValueError, OSError) as e:
        print(f"alignclip rois {args.command}: error: {e}", file=sys.stderr)
        return 1
    total = summary["total"]
    print(
        f"convert-vinvl: this run {report.shards_written} shard(s) written, "
        f"{report.shards_skipped} skipped (done before); {report.samples} samples, "
        f"{report.missing} not in the TSVs, {len(report.bad_rows)} bad rows, "
        f"{report.without_rois} without ROIs\n"
        f"all {total['shards']} converted shard(s): {total['samples']} samples, "
        f"{total['missing']} not in the TSVs, {total['bad_rows']} bad rows, "
        f"{total['without_rois']} without ROIs ({out_dir / SUMMARY_FILE})"
    )
    return 0
