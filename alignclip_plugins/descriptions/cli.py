"""``alignclip describe``: LLM visual descriptions of every object or class name.

Examples::

    alignclip describe --vocabulary data/object-vocabulary.json --out descriptions.json \\
        --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct
    alignclip describe --classnames imagenet-classes.txt --n 3 --out imagenet-descriptions.json \\
        --llm-url https://api.openai.com/v1 --llm-model gpt-4o-mini
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from alignclip_plugins.llm.options import add_llm_arguments, client_from_args


def build_argparser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="alignclip describe",
        description="Ask an LLM for the appearance of every object or class name "
        "(the AlignCLIP supplement's prompt) and write {name: [descriptions]} as JSON.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--vocabulary",
        type=Path,
        help="object vocabulary: 'alignclip objects stats' output, {canonical: [forms]} JSON, "
        "or one name a line",
    )
    source.add_argument("--classnames", type=Path, help="class names, one a line (or a JSON list)")
    p.add_argument("--out", required=True, type=Path, help="descriptions file to write (JSON)")
    p.add_argument("--n", type=int, default=1, help="descriptions per name")
    p.add_argument(
        "--temperature",
        type=float,
        default=None,
        help="sampling temperature (default 0 for --n 1, 0.7 otherwise)",
    )
    p.add_argument(
        "--cache", type=Path, default=None, help="LLM answer cache (default OUT.cache.jsonl)"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_llm_arguments(p, required=True)
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``alignclip describe``."""
    from alignclip_plugins.descriptions.generate import (
        describe,
        read_classnames,
        read_vocabulary_names,
        write_descriptions,
    )
    from alignclip_plugins.llm.cache import ChatCache
    from alignclip_plugins.llm.client import LLMFatalError
    from alignclip_plugins.llm.runner import LLMUnavailable

    args = build_argparser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("alignclip_plugins").setLevel(logging.INFO)
    temperature = (
        args.temperature if args.temperature is not None else (0.0 if args.n == 1 else 0.7)
    )
    try:
        if args.vocabulary is not None:
            names = read_vocabulary_names(args.vocabulary)
        else:
            names = read_classnames(args.classnames)
        client = client_from_args(args, temperature=temperature)
        cache_path = args.cache or args.out.with_name(args.out.name + ".cache.jsonl")
        with ChatCache(cache_path) as cache:
            result = describe(
                names,
                client,
                cache,
                n=args.n,
                workers=args.llm_workers,
                progress=not args.no_progress,
            )
        write_descriptions(args.out, result.descriptions)
    except (LLMFatalError, LLMUnavailable) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; answers so far are cached, rerun to resume", file=sys.stderr)
        return 130
    counts = result.stats.as_dict()
    print(
        f"{len(result.descriptions):,} of {len(names):,} names described -> {args.out} "
        f"({counts['requests']:,} requests, {counts['cache_hits']:,} from the cache "
        f"{cache_path}, {result.malformed} empty answers, {counts['failed']} failed)"
    )
    if result.missing:
        shown = ", ".join(repr(m) for m in result.missing[:5])
        print(
            f"{len(result.missing)} names lack descriptions ({shown}{', ...' if len(result.missing) > 5 else ''}); "
            "rerun the same command to retry them",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
