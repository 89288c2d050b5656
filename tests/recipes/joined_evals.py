"""Test helper of the recipe tests: a printed joined evaluation command split per task."""

import shlex

from alignclip_plugins.evaluation.cli import THEN, split_parts


def eval_lines(line: str) -> list[str]:
    """A printed line; a joined ``... eval A ... --then B ...`` as one line per task."""
    argv = shlex.split(line) if f" {THEN} " in line else []
    if not argv:
        return [line]
    head = argv.index("eval") + 1
    return [shlex.join(argv[:head] + part) for part in split_parts(argv[head:])]
