"""Atomic file writes: a temporary file beside the target, fsync'ed, then ``os.replace``d.

A reader (or a resumed run) sees either the old file or the complete new one, never a
partial file. A crash leaves at most a ``.NAME.PID.*.tmp`` file, which
:func:`remove_stale_temporaries` clears once process PID is gone.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO


@contextlib.contextmanager
def atomic_writer(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[TextIO]:
    """Open a text stream whose content replaces ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "w", encoding=encoding, newline="\n") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(path.parent)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` atomically."""
    with atomic_writer(path) as f:
        f.write(text)


def remove_stale_temporaries(directory: str | os.PathLike, name_suffix: str = "") -> int:
    """Delete temporaries left in ``directory`` by interrupted atomic writes of files whose
    name ends with ``name_suffix``; returns how many were removed. A temporary of a process
    still running on this machine (another parse into the same directory) is left alone."""
    removed = 0
    for tmp in Path(directory).glob(f".*{name_suffix}.*.tmp"):
        pid = tmp.name[: -len(".tmp")].split(".")[-2]
        if pid.isdigit() and _alive(int(pid)):
            continue
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
            removed += 1
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists but is not ours, or cannot tell: keep its file
    return True


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform / file system
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
