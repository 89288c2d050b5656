"""A minimal unified-diff reader and applier (the subset ``diff -u`` writes).

Hunks must apply exactly: context and removed lines are matched verbatim, at the
position the hunk names or, failing that, at one unique position elsewhere in the file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_HUNK = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")


class PatchError(Exception):
    """A diff that is malformed or does not apply to the given source."""


@dataclass
class Hunk:
    header: str
    old_start: int  # 1-based line number in the original file
    old: list[str] = field(default_factory=list)  # context + removed lines
    new: list[str] = field(default_factory=list)  # context + added lines


@dataclass
class FilePatch:
    path: str  # path after the "a/" / "b/" prefix, e.g. "open_clip_train/main.py"
    hunks: list[Hunk] = field(default_factory=list)


def parse(text: str) -> dict[str, FilePatch]:
    """Parse a unified diff into ``{path: FilePatch}``; text before the first ``---`` is ignored."""
    patches: dict[str, FilePatch] = {}
    current: FilePatch | None = None
    hunk: Hunk | None = None
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("--- ") and i + 1 < len(lines) and lines[i + 1].startswith("+++ "):
            path = lines[i + 1][4:].split("\t")[0].strip()
            path = path[2:] if path.startswith("b/") else path
            current = patches.setdefault(path, FilePatch(path))
            hunk = None
            i += 2
            continue
        m = _HUNK.match(line)
        if m:
            if current is None:
                raise PatchError(f"hunk {line!r} before any file header")
            hunk = Hunk(header=line, old_start=int(m.group(1)))
            current.hunks.append(hunk)
        elif hunk is not None and line[:1] in (" ", "-", "+", ""):
            tag, body = (line[:1] or " "), line[1:]
            if tag in (" ", "-"):
                hunk.old.append(body)
            if tag in (" ", "+"):
                hunk.new.append(body)
        elif hunk is not None and line.startswith("\\"):
            pass  # "\ No newline at end of file"
        i += 1
    return patches


def _find(lines: list[str], block: list[str], expected: int) -> int | None:
    def matches(at: int) -> bool:
        return lines[at : at + len(block)] == block

    if 0 <= expected <= len(lines) - len(block) and matches(expected):
        return expected
    found = [at for at in range(len(lines) - len(block) + 1) if matches(at)]
    return found[0] if len(found) == 1 else None


def apply(source: str, patch: FilePatch) -> str:
    """Return ``source`` with every hunk of ``patch`` applied; raise :class:`PatchError` if one fails."""
    lines = source.split("\n")
    offset = 0
    for hunk in patch.hunks:
        at = _find(lines, hunk.old, hunk.old_start - 1 + offset)
        if at is None:
            raise PatchError(f"{patch.path}: hunk {hunk.header} does not apply")
        lines[at : at + len(hunk.old)] = hunk.new
        offset = at - (hunk.old_start - 1) + len(hunk.new) - len(hunk.old)
    return "\n".join(lines)
