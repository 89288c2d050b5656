"""Webdataset shards: their names, shard lists, and the members of one tar shard.

* :func:`shard_name` / :func:`shard_pattern` / :func:`shard_index`: the file names this
  project writes shards under (``train-000003.tar``, ``train-{000000..000007}.tar``);
* :func:`shard_stem` names the per-shard sidecars (object sets, ROIs) of a shard URL;
* :func:`expand_patterns` / :func:`expand_shards` turn a ``--train-data``-style value into
  shard URLs exactly as open_clip does (``::``-separated lists (:func:`split_sources`), brace
  ranges ``{000000..000331}``, ``${NAME}`` from ``$WDS_NAME``, through webdataset's
  ``expand_urls``), plus directories (their shard files, sorted) where the caller allows them;
* :func:`expand_globs` / :func:`compress_urls` turn file globs into brace patterns and a list
  of URLs back into the shortest brace patterns;
* :func:`iter_members` / :func:`iter_samples` read a tar shard's members with sample keys
  as webdataset forms them (the member path up to the first dot of its file name, the
  extension compared in lower case; ``__meta__`` files and members without an extension
  skipped), reading only the members asked for (the others are seeked over).
"""

from __future__ import annotations

import os
import re
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path

TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")

#: Digits of a shard's number in the names this project writes (``train-000003.tar``).
SHARD_DIGITS = 6

#: The characters that make a path a file glob (``ROOT/train-*.tar``).
GLOB_CHARS = "*?["

# webdataset's base_plus_ext: the key is everything up to the first dot of the file name
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
# a shard file name inside a ``pipe:`` command (or any text)
_SHARD_IN_TEXT = re.compile(r"([^/\s'\"=:]+?)(\.tar\.gz|\.tgz|\.tar)(?=$|[\s?#'\";|&)])", re.I)


class ShardNameError(ValueError):
    """A URL that names no shard file (``NAME.tar``, ``NAME.tar.gz``, ``NAME.tgz``)."""


class ShardReadError(ValueError):
    """A shard that cannot be read as a tar file; the message names it."""


def is_tar(path: str | os.PathLike) -> bool:
    """Whether ``path`` ends with a tar suffix (any case)."""
    return str(path).lower().endswith(TAR_SUFFIXES)


def is_local(url: str | os.PathLike) -> bool:
    """Whether ``url`` is a local path (not ``scheme://`` nor a ``pipe:`` command)."""
    text = str(url)
    return "://" not in text and not text.startswith("pipe:")


def shard_name(split: str, index: int) -> str:
    """The file name of shard ``index`` of ``split``: ``train-000003.tar``."""
    return f"{split}-{index:0{SHARD_DIGITS}d}.tar"


def shard_pattern(split: str, count: int) -> str:
    """The brace pattern of shards 0 .. ``count`` - 1 of ``split``:
    ``train-{000000..000007}.tar``."""
    return f"{split}-{{{0:0{SHARD_DIGITS}d}..{count - 1:0{SHARD_DIGITS}d}}}.tar"


def shard_index(name: str, split: str) -> int | None:
    """The index of the shard file ``name`` of ``split`` (``train-000003.tar`` -> 3), or None
    when ``name`` is not one (:func:`shard_name`'s form)."""
    match = re.fullmatch(rf"{re.escape(split)}-(\d{{{SHARD_DIGITS}}})\.tar", name)
    return int(match.group(1)) if match else None


def shard_stem(url: str | os.PathLike) -> str:
    """The sidecar stem of a shard URL: its file name without the tar suffix.

    ``/data/train-000003.tar``, ``s3://b/train-000003.tar?versionId=2`` and
    ``pipe:aws s3 cp s3://b/train-000003.tar -`` (the last shard file a command names) all
    give ``train-000003``. The suffix (``.tar``, ``.tar.gz``, ``.tgz``) is matched in any
    case and the stem keeps its case: ``data/TRAIN-1.TAR`` gives ``TRAIN-1``. A URL that
    names no such file raises :class:`ShardNameError`: sidecars are found by shard file
    name, so a guessed stem could silently pair a shard with another shard's sidecar.
    """
    text = str(url)
    if text.startswith("pipe:"):
        found = _SHARD_IN_TEXT.findall(text)
        if found:
            return found[-1][0]
    else:
        name = re.split(r"[?#]", text, maxsplit=1)[0].rstrip("/").replace("\\", "/")
        name = name.rsplit("/", 1)[-1]
        lower = name.lower()
        for suffix in TAR_SUFFIXES[1:] + TAR_SUFFIXES[:1]:  # .tar.gz before .tar
            if lower.endswith(suffix) and len(name) > len(suffix):
                return name[: -len(suffix)]
    raise ShardNameError(
        f"cannot tell the shard name of {text!r}: per-shard sidecars are matched to shards by "
        "their file name, which must end in .tar, .tar.gz or .tgz"
    )


def split_sources(spec: str | os.PathLike) -> list[str]:
    """The ``::``-separated sources of a ``--train-data``-style value, unexpanded."""
    return str(spec).split("::")


def expand_patterns(spec: str | os.PathLike | Sequence[str | os.PathLike]) -> list[str]:
    """URLs of ``--train-data``-style values, without touching the file system.

    A string is split on ``::`` and each part brace-expanded (``a-{000..003}.tar``), as
    open_clip expands ``--train-data`` (webdataset's ``expand_urls``); a sequence expands
    each of its items that way, in order.
    """
    from webdataset.shardlists import expand_urls

    items = [spec] if isinstance(spec, (str, os.PathLike)) else list(spec)
    urls: list[str] = []
    for item in items:
        urls.extend(expand_urls(str(item)))
    return urls


def is_pattern(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` is a brace pattern or a ``::`` list (to expand, not one path)."""
    text = str(spec)
    return "{" in text or "::" in text


def has_glob(spec: str | os.PathLike) -> bool:
    """Whether ``spec`` holds a file glob character (``*``, ``?``, ``[``)."""
    return any(c in str(spec) for c in GLOB_CHARS)


def expand_globs(spec: str | os.PathLike) -> str:
    """``spec`` with each glob source of its ``::`` list replaced by its matches as brace
    patterns (sorted, :func:`compress_urls`); sources that match nothing, are no globs or
    are remote (``scheme://``) stay as they are."""
    import glob

    parts = []
    for part in split_sources(spec):
        matches = sorted(glob.glob(part)) if has_glob(part) and "://" not in part else []
        parts.append(compress_urls(matches) if matches else part)
    return "::".join(parts)


_NUMBERED = re.compile(r"^(.*?)(\d+)(\D*)$")


def compress_urls(urls: Sequence[str]) -> str:
    """A ``::``-joined list of brace patterns covering exactly ``urls``, in order (the inverse
    of :func:`expand_patterns`): consecutive numbers of the same width, prefix and suffix
    become one ``{first..last}`` range."""
    parts: list[str] = []
    run: list[tuple[str, int, int, str]] = []  # prefix, number, width, suffix

    def flush() -> None:
        if not run:
            return
        prefix, first, width, suffix = run[0]
        last = run[-1][1]
        if len(run) == 1:
            parts.append(f"{prefix}{first:0{width}d}{suffix}")
        else:
            parts.append(f"{prefix}{{{first:0{width}d}..{last:0{width}d}}}{suffix}")
        run.clear()

    for url in urls:
        m = _NUMBERED.match(url)
        if not m:
            flush()
            parts.append(url)
            continue
        prefix, digits, suffix = m.groups()
        item = (prefix, int(digits), len(digits), suffix)
        if run and (
            run[-1][0] != prefix
            or run[-1][3] != suffix
            or run[-1][2] != len(digits)
            or run[-1][1] + 1 != item[1]
        ):
            flush()
        run.append(item)
    flush()
    return "::".join(parts)


def shards_in_directory(
    directory: str | os.PathLike, suffixes: Sequence[str] = (".tar",)
) -> list[str]:
    """The files of ``directory`` whose names end with one of ``suffixes`` (any case), sorted."""
    directory = Path(directory)
    wanted = tuple(s.lower() for s in suffixes)
    return sorted(
        str(p) for p in directory.iterdir() if p.is_file() and p.name.lower().endswith(wanted)
    )


def expand_shards(
    spec: str | os.PathLike | Sequence[str | os.PathLike],
    *,
    directories: Sequence[str] | None = (".tar",),
    must_exist: bool = True,
) -> list[str]:
    """Shard URLs of ``spec`` (see :func:`expand_patterns`).

    A local directory is replaced by its files ending with one of ``directories`` (sorted;
    None: directories are not accepted). With ``must_exist``, a local shard that does not
    exist, a directory without shards or an empty result raise ``FileNotFoundError`` naming
    them; remote URLs (``s3://``, ``pipe:``) are not checked.
    """
    urls: list[str] = []
    for url in expand_patterns(spec):
        if directories is not None and is_local(url) and Path(url).is_dir():
            found = shards_in_directory(url, directories)
            if not found and must_exist:
                raise FileNotFoundError(
                    f"directory {url} holds no shards ({', '.join('*' + s for s in directories)})"
                )
            urls.extend(found)
        else:
            urls.append(url)
    if must_exist:
        missing = [u for u in urls if is_local(u) and not Path(u).is_file()]
        if missing:
            raise FileNotFoundError(
                f"{len(missing)} of {len(urls)} shard(s) of {_shown(spec)} do not exist, "
                f"e.g. {missing[0]}"
            )
        if not urls:
            raise FileNotFoundError(f"no shards in {_shown(spec)}")
    return urls


def _shown(spec) -> str:
    if isinstance(spec, (str, os.PathLike)):
        return repr(str(spec))
    items = [str(s) for s in spec]
    return repr(items[0]) if len(items) == 1 else f"{items[0]!r} ... ({len(items)} patterns)"


def local_shard(url: str | os.PathLike) -> Path:
    """``url`` as an existing local file, or a ValueError saying it must be one."""
    path = Path(url)
    if not is_local(url) or not path.is_file():
        raise ValueError(f"shard {url} is not a local file (this tool reads local shards)")
    return path


def split_member_name(name: str) -> tuple[str, str] | None:
    """``(key, lower-case extension)`` of a tar member name as webdataset forms them, or None
    for members webdataset skips (``__meta__`` files, names without an extension)."""
    if "/" not in name and name.startswith("__") and name.endswith("__"):
        return None
    match = _KEY_EXT.match(name)
    if match is None:
        return None
    return match.group(1), match.group(2).lower()


def iter_members(
    path: str | os.PathLike, exts: Sequence[str] = ()
) -> Iterator[tuple[str, str, bytes | None]]:
    """``(key, ext, data)`` per regular member of a tar shard (compressed ones too), in
    order; ``data`` is read only for extensions in ``exts`` (else None).

    An unreadable or truncated shard raises :class:`ShardReadError` naming the shard and
    the last sample key read before the damage.
    """
    wanted = {e.lower() for e in exts}
    last: str | None = None
    try:
        with tarfile.open(path, mode="r:*") as tar:
            for member in tar:
                if not member.isreg():
                    continue
                parts = split_member_name(member.name)
                if parts is None:
                    continue
                key, ext = parts
                data = None
                if ext in wanted:
                    f = tar.extractfile(member)
                    data = f.read() if f is not None else b""
                last = key
                yield key, ext, data
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:
        if isinstance(e, ShardReadError):
            raise
        raise ShardReadError(read_error_message(path, f"{type(e).__name__}: {e}", last)) from e


def read_error_message(url: str | os.PathLike, reason: str, last: str | None) -> str:
    """The message for a shard that stopped being readable (``last``: the last key read)."""
    where = f" after sample {last!r}" if last is not None else ""
    reason = " ".join(reason.split())  # tarfile lists each method it tried on its own line
    return (
        f"shard {url} is not a readable tar file{where} ({reason}); "
        "re-download or regenerate it, or leave it out of the inputs"
    )


def iter_samples(
    path: str | os.PathLike, exts: Sequence[str] = ()
) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {ext: bytes})`` per sample of a tar shard, in shard order.

    Only members whose extension is in ``exts`` are read. A key must not reappear after
    another key's members (webdataset would split it into two samples).
    """
    current: str | None = None
    members: dict[str, bytes] = {}
    seen: set[str] = set()
    for key, ext, data in iter_members(path, exts):
        if key != current:
            if current is not None:
                yield current, members
            if key in seen:
                raise ValueError(
                    f"shard {path}: members of sample {key!r} are not contiguous; "
                    "webdataset would split it into two samples (rewrite the shard)"
                )
            seen.add(key)
            current, members = key, {}
        if data is not None:
            members[ext] = data
    if current is not None:
        yield current, members


def shard_keys(path: str | os.PathLike) -> list[str]:
    """The sample keys of a tar shard, in order (member headers only)."""
    return [key for key, _ in iter_samples(path)]
