"""``alignclip objects parse`` and ``alignclip objects stats``.

Examples::

    alignclip objects parse data/train-{000000..000099}.tar --out data/objects
    alignclip objects parse data/ --parser vocab --vocabulary data/vocabulary.json --out data/objects
    OPENAI_API_KEY=... alignclip objects parse captions.txt --parser llm \\
        --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --out objects/
    alignclip objects stats data/objects --out data/object-vocabulary.json --plot freq.png
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alignclip_plugins.objects.parsing import ObjectParser

ERRORS_FILE = "malformed-answers.jsonl"
CACHE_FILE = "llm-cache.jsonl"


def _parse_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parse",
        help="parse caption objects into sidecar files",
        description="Parse the objects of every caption into OUT/<input>.objects.jsonl "
        "(one {'key', 'objects'} a line). Finished inputs are skipped on a rerun.",
    )
    p.add_argument(
        "inputs",
        nargs="+",
        metavar="INPUT",
        help="webdataset shards (brace patterns allowed), text files (one caption a line) "
        "or directories of them",
    )
    p.add_argument("--out", required=True, type=Path, help="directory for the sidecars")
    p.add_argument(
        "--parser",
        choices=("pos", "llm", "vocab"),
        default=None,
        help="backend (default: vocab when --vocabulary is given, else pos)",
    )
    p.add_argument("--overwrite", action="store_true", help="re-parse inputs already done")
    p.add_argument("--batch-size", type=int, default=None, help="captions per parser batch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = p.add_argument_group("vocab parser")
    g.add_argument(
        "--vocabulary",
        type=Path,
        help="JSON {canonical: [surface forms]}, a stats vocabulary file, or a text file "
        "with one object a line (plurals generated)",
    )
    g = p.add_argument_group("pos parser (stanza)")
    g.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    g.add_argument("--stanza-dir", type=Path, default=None, help="stanza model directory")
    g.add_argument(
        "--depparse",
        action="store_true",
        help="also parse dependencies (compound relations; slower)",
    )
    g.add_argument(
        "--compounds", type=Path, default=None, help="text file of extra compound nouns, one a line"
    )
    from alignclip_plugins.llm.options import add_llm_arguments

    add_llm_arguments(p)
    p.add_argument(
        "--cache", type=Path, default=None, help=f"LLM answer cache (default OUT/{CACHE_FILE})"
    )


def _stats_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "stats",
        help="object vocabulary, frequencies and long tail of parsed sidecars",
        description="Count objects over sidecars, mark the tail, write the vocabulary file "
        "the training plugin loads, print the supplement's Table 1 row.",
    )
    p.add_argument("sidecars", nargs="+", metavar="SIDECARS", help="sidecar directories or files")
    p.add_argument("--out", required=True, type=Path, help="vocabulary file to write (JSON)")
    p.add_argument("--min-count", type=int, default=1, help="leave out rarer objects")
    p.add_argument(
        "--tail-fraction",
        type=float,
        default=0.3,
        help="least frequent share of objects marked tail",
    )
    p.add_argument("--name", default=None, help="dataset name for the Table 1 row")
    p.add_argument("--plot", type=Path, default=None, help="log-log frequency plot (PNG)")


def build_object_parser(args: argparse.Namespace) -> ObjectParser:
    """The backend ``args`` ask for."""
    kind = args.parser or ("vocab" if args.vocabulary else "pos")
    if kind == "vocab":
        from alignclip_plugins.objects.vocabulary import VocabParser

        if args.vocabulary is None:
            raise ValueError("--parser vocab needs --vocabulary FILE")
        parser: ObjectParser = VocabParser(args.vocabulary)
    elif kind == "pos":
        from alignclip_plugins.objects.pos import PosParser

        compounds = None
        if args.compounds is not None:
            lines = args.compounds.read_text(encoding="utf-8").splitlines()
            compounds = [
                line.strip() for line in lines if line.strip() and not line.startswith("#")
            ]
        parser = PosParser(
            batch_size=args.batch_size or 256,
            device=args.device,
            depparse=args.depparse,
            model_dir=args.stanza_dir,
            compounds=compounds,
        )
    else:
        from alignclip_plugins.llm.cache import ChatCache
        from alignclip_plugins.llm.options import client_from_args
        from alignclip_plugins.objects.llm_parser import LLMParser

        client = client_from_args(args)
        args.out.mkdir(parents=True, exist_ok=True)
        if args.overwrite:
            (args.out / ERRORS_FILE).unlink(missing_ok=True)
        parser = LLMParser(
            client,
            ChatCache(args.cache or args.out / CACHE_FILE),
            workers=args.llm_workers,
            errors_path=args.out / ERRORS_FILE,
        )
    if args.batch_size and kind != "pos":
        parser.batch_size = args.batch_size
    return parser


def run_parse(args: argparse.Namespace) -> int:
    from alignclip_plugins.llm.client import LLMFatalError
    from alignclip_plugins.llm.runner import LLMUnavailable
    from alignclip_plugins.objects.captions import expand_inputs
    from alignclip_plugins.objects.run import format_summary, parse_inputs

    inputs = expand_inputs(args.inputs)
    parser = build_object_parser(args)
    try:
        summary = parse_inputs(inputs, parser, args.out, args.overwrite, not args.no_progress)
    except (LLMFatalError, LLMUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(format_summary(summary))
    print(f"sidecars and parse-summary.json in {args.out}")
    if summary["inputs_failed"]:
        print(
            f"{summary['inputs_failed']} inputs could not be finished; rerun the same command "
            "to retry them (finished inputs are skipped)",
            file=sys.stderr,
        )
        return 1
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from alignclip_plugins.objects.stats import (
        build_vocabulary,
        count_objects,
        plot_frequencies,
        table_row,
        write_vocabulary,
    )

    counts = count_objects(args.sidecars)
    vocabulary = build_vocabulary(counts, args.tail_fraction, args.min_count)
    write_vocabulary(args.out, vocabulary)
    name = args.name or Path(args.sidecars[0]).resolve().name
    print(table_row(name, vocabulary))
    print(
        f"object occurrences: {vocabulary['num_objects_parsed']:,}; captions with no object: "
        f"{vocabulary['captions_without_objects']:,}; vocabulary written to {args.out}"
    )
    if args.plot is not None:
        plot_frequencies(vocabulary, args.plot, title=f"{name}: object frequency")
        print(f"frequency plot: {args.plot}")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alignclip objects``."""
    parser = argparse.ArgumentParser(prog="alignclip objects", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    _parse_parser(sub)
    _stats_parser(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alignclip_plugins").setLevel(logging.INFO)
    try:
        return run_parse(args) if args.command == "parse" else run_stats(args)
    except (ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; finished inputs are kept, rerun to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
