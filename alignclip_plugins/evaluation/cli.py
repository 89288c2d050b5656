"""``alignclip eval TASK``: evaluate checkpoints on the papers' downstream tasks.

Every task loads each ``--checkpoint`` (this project's, with plugin modules skipped, or a
plain open_clip one; or open_clip's ``--pretrained`` weights), runs, writes one JSON result
per checkpoint next to its run (:mod:`alignclip_plugins.evaluation.results`) and prints a
short table. See docs/evaluation.md for the datasets' layouts.

This module only builds the parser, parses and dispatches: each task (its options and its
run) is a :class:`~alignclip_plugins.evaluation.tasks.base.Task` in its own module of
:mod:`alignclip_plugins.evaluation.tasks`.
"""

from __future__ import annotations

import argparse
import sys

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alignclip eval",
        description="Evaluate checkpoints on downstream tasks; results go next to each run.",
    )
    sub = parser.add_subparsers(dest="task", metavar="TASK", required=True)
    for name, task in TASKS.items():
        task.add_arguments(sub.add_parser(name, help=task.help))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        with evaluating(args):
            TASKS[args.task].run(args)
    except (EvalError, ValueError, FileNotFoundError, ImportError) as e:
        print(f"alignclip eval {args.task}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
