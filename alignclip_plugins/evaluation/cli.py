"""``alignclip eval TASK``: evaluate checkpoints on the papers' downstream tasks.

Every task loads each ``--checkpoint`` (this project's, with plugin modules skipped, or a
plain open_clip one; or open_clip's ``--pretrained`` weights), runs, writes one JSON result
per checkpoint next to its run (:mod:`alignclip_plugins.evaluation.results`) and prints a
short table. See docs/evaluation.md for the datasets' layouts.

Several tasks run in one process (torch and open_clip imported once) when their command lines
are joined by ``--then``: ``alignclip eval zeroshot ARGS... --then retrieval ARGS...``; each
part is parsed as a command of its own (all of them before any runs) and run in order, a
failed part is reported and the next ones still run.

This module only builds the parser, parses and dispatches: each task (its options and its
run) is a :class:`~alignclip_plugins.evaluation.tasks.base.Task` in its own module of
:mod:`alignclip_plugins.evaluation.tasks`.
"""

from __future__ import annotations

import argparse
import sys
import traceback

from alignclip_plugins.evaluation.tasks import (
    copy_detection,
    gradcam,
    instance_retrieval,
    logit_distribution,
    retrieval,
    retrieval_grid,
    zeroshot,
)
from alignclip_plugins.evaluation.tasks.base import EvalError, Task, evaluating

#: The tasks by name, in the order ``--help`` lists them.
TASKS: dict[str, Task] = {
    "zeroshot": zeroshot.TASK,
    "retrieval": retrieval.TASK,
    "instance-retrieval": instance_retrieval.TASK,
    "copy-detection": copy_detection.TASK,
    "logit-distribution": logit_distribution.TASK,
    "retrieval-grid": retrieval_grid.TASK,
    "gradcam": gradcam.TASK,
}


#: Separates the tasks of one command line: ``zeroshot ARGS... --then retrieval ARGS...``.
THEN = "--then"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignclip eval",
        description="Evaluate checkpoints on downstream tasks; results go next to each run. "
        f"Several tasks run in one process when joined by {THEN}: "
        f"alignclip eval zeroshot ARGS... {THEN} retrieval ARGS...",
    )
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, task in TASKS.items():
        task.add_arguments(sub.add_parser(name, help=task.help))
    return parser


def split_parts(argv: list[str]) -> list[list[str]]:
    """The task command lines of ``argv``, split at each ``--then``."""
    parts: list[list[str]] = [[]]
    for arg in argv:
        if arg == THEN:
            parts.append([])
        else:
            parts[-1].append(arg)
    return parts


def parse_parts(argv: list[str]) -> list[argparse.Namespace]:
    """Each part of ``argv`` parsed by its own parser (usage errors exit before any runs)."""
    parts = split_parts(argv)
    if len(parts) > 1 and not all(parts):
        build_parser().error(f"{THEN} must stand between two task command lines")
    return [build_parser().parse_args(part) for part in parts]


def run_task(args: argparse.Namespace) -> bool:
    """Run one parsed task; a usage or data error is reported in one line (False)."""
    try:
        with evaluating(args):
            TASKS[args.task].run(args)
    except (EvalError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"alignclip eval {args.task}: error: {e}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parsed = parse_parts(list(sys.argv[1:] if argv is None else argv))
    if len(parsed) == 1:
        return 0 if run_task(parsed[0]) else 1
    failed = []
    for i, args in enumerate(parsed, 1):
        print(f"\n== alignclip eval {args.task} ({i}/{len(parsed)})", flush=True)
        try:
            ok = run_task(args)
        except Exception:  # a crash of one part leaves the next ones to run
            traceback.print_exc()
            print(f"alignclip eval {args.task}: error: crashed (above)", file=sys.stderr)
            ok = False
        if not ok:
            failed.append(f"{args.task} ({i})")
    if failed:
        print(
            f"alignclip eval: {len(failed)} of {len(parsed)} tasks failed: {', '.join(failed)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
