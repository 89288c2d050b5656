"""Atomic writes: every output file or directory appears under its final name complete.

Content goes to a hidden temporary beside the target, ``.NAME.PID.TOKEN.tmp``, is flushed
and ``fsync``'ed, then renamed over the target (``os.replace``; the directory is synced
too). A reader, or a resumed run, sees the old file or the complete new one, never a
partial one. A crash leaves at most a temporary, which :func:`remove_stale_temporaries`
deletes once its process (``PID``) is gone.

Permissions: temporaries are created with mode 0666 (files) / 0777 (directories) and the
process umask applied by the OS, exactly as ``open(path, "w")`` or ``mkdir`` would: 0644
under the usual umask 022, 0640 under 027. A replaced file gets these permissions, not the
old file's.
"""

from __future__ import annotations

import contextlib
import io
import os
import secrets
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any, BinaryIO

TMP_SUFFIX = ".tmp"


def temporary_path(path: str | os.PathLike) -> Path:
    """A fresh hidden temporary name beside ``path``: ``.NAME.PID.TOKEN.tmp``."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{TMP_SUFFIX}")


def _create_temporary(path: Path) -> tuple[int, Path]:
    """An exclusive new temporary file beside ``path`` (mode 0666 & ~umask), open for writing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temporary_path(path)
        try:
            return os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:  # pragma: no cover - a 32-bit token collision
            continue


@contextlib.contextmanager
def atomic_writer(
    path: str | os.PathLike, mode: str = "w", encoding: str = "utf-8"
) -> Iterator[IO]:
    """Open a stream (``mode`` ``"w"`` text, ``"wb"`` bytes) whose content replaces ``path``
    only if the block succeeds; on an exception the old file (if any) stays as it was."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_writer mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    fd, tmp = _create_temporary(path)
    try:
        if mode == "w":
            stream = os.fdopen(fd, "w", encoding=encoding, newline="\n")
        else:
            stream = os.fdopen(fd, "wb")
        with stream as f:
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
    """Replace ``path`` with the UTF-8 ``text`` atomically."""
    with atomic_writer(path) as f:
        f.write(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_writer(path, "wb") as f:
        f.write(data)


def atomic_write_with(path: str | os.PathLike, fill: Callable[[BinaryIO], None]) -> None:
    """Create ``path`` atomically by calling ``fill(binary stream)`` (a tar writer, an image
    saver)."""
    with atomic_writer(path, "wb") as f:
        fill(f)


def atomic_save_figure(fig, path: str | os.PathLike, **savefig: Any) -> Path:
    """Save a matplotlib figure to ``path`` atomically (format from the suffix, default
    PNG); ``savefig`` goes to ``Figure.savefig`` (``dpi``, ``bbox_inches``). Returns the path."""
    path = Path(path)
    savefig.setdefault("format", path.suffix[1:].lower() or "png")
    buffer = io.BytesIO()
    fig.savefig(buffer, **savefig)
    atomic_write_bytes(path, buffer.getvalue())
    return path


def make_temporary_directory(final: str | os.PathLike) -> Path:
    """A new hidden temporary directory beside ``final`` (mode 0777 & ~umask), to be filled
    and then moved into place with :func:`publish_directory`."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = temporary_path(final)
        try:
            tmp.mkdir(0o777)
            return tmp
        except FileExistsError:  # pragma: no cover - a 32-bit token collision
            continue


def publish_directory(tmp: str | os.PathLike, final: str | os.PathLike) -> bool:
    """Sync the files of ``tmp`` and rename it to ``final``; returns True.

    When ``final`` already exists (another process finished the same work first), ``tmp``
    is deleted and False returned; the caller decides whether the existing one is complete.
    """
    tmp, final = Path(tmp), Path(final)
    for child in tmp.iterdir():
        if child.is_file():
            with open(child, "rb") as f:
                os.fsync(f.fileno())
    _fsync_directory(tmp)
    try:
        os.rename(tmp, final)
    except OSError:
        if not final.exists():
            raise
        shutil.rmtree(tmp, ignore_errors=True)
        return False
    _fsync_directory(final.parent)
    return True


def remove_stale_temporaries(directory: str | os.PathLike, name_suffix: str = "") -> int:
    """Delete the temporaries (files or directories) left in ``directory`` by interrupted
    atomic writes of names ending with ``name_suffix``; returns how many were removed.

    A temporary of a process still running on this machine (another writer into the same
    directory) is left alone. A missing ``directory`` has none.
    """
    directory = Path(directory)
    if not directory.is_dir():
        return 0
    removed = 0
    for tmp in directory.glob(f".*{name_suffix}.*{TMP_SUFFIX}"):
        pid = _writer_pid(tmp.name)
        if pid is not None and _alive(pid):
            continue
        if tmp.is_dir() and not tmp.is_symlink():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
        removed += 1
    return removed


def _writer_pid(name: str) -> int | None:
    """The PID in ``.NAME.PID.TOKEN.tmp`` (None for names of another form)."""
    parts = name[: -len(TMP_SUFFIX)].split(".")
    return int(parts[-2]) if len(parts) >= 3 and parts[-2].isdigit() else None


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists but is not ours, or cannot tell: keep its temporary
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


__all__ = [
    "TMP_SUFFIX",
    "atomic_save_figure",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_with",
    "atomic_writer",
    "make_temporary_directory",
    "publish_directory",
    "remove_stale_temporaries",
    "temporary_path",
]
