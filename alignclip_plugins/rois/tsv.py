"""Detector TSVs (VinVL ``predictions.tsv``, Oscar features / labels, ``hw.tsv``) looked up
by image key.

Each TSV is indexed once (key -> byte offset and line number; from its ``.lineidx`` file
when there is one, else by a scan with a progress bar) and the index cached in the
conversion's ``OUT/.tsv-index/`` (named by the TSV's size and modification time, so an
edited TSV is indexed again). Rows are then read by seeking. A line without a tab is
indexed under its first word and read back as a bad row (:data:`NO_TAB`), not lost.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from alignclip_plugins.io.atomic import atomic_write_text

log = logging.getLogger(__name__)

INDEX_VERSION = "v2"  # key index format: v2 also indexes lines without a tab
NO_TAB = "the line has no tab between the key and the row (expected KEY<TAB>ROW)"


def row_key(line: bytes) -> str | None:
    """The key of a TSV line: its first column; for a line without a tab (a damaged row),
    its first word, so that the row is reported as a bad row of that key rather than the
    key counted as missing. None for a blank line or an empty key."""
    tab = line.find(b"\t")
    if tab == 0 or not line.strip():
        return None
    head = line[:tab] if tab > 0 else line.split(None, 1)[0]
    return head.decode("utf-8", "replace")


def normalise_key(key: str) -> str:
    """``images/000123.jpg`` -> ``000123`` (webdataset keys have no directory or extension)."""
    return key.replace("\\", "/").rsplit("/", 1)[-1].split(".", 1)[0]


@dataclass
class TsvFile:
    """One TSV with a key -> (byte offset, line number) index built once and cached."""

    path: Path
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    duplicates: int = 0
    _handle: object = None

    def index(self, cache_dir: Path | None, progress: bool) -> TsvFile:
        stat = self.path.stat()
        cache = None
        if cache_dir is not None:
            name = f"{self.path.name}.{stat.st_size}.{stat.st_mtime_ns}.{INDEX_VERSION}.keys.tsv"
            cache = cache_dir / name
            if cache.is_file():
                for line in cache.read_text(encoding="utf-8").splitlines():
                    key, offset, number = line.rsplit("\t", 2)
                    self.offsets[key] = (int(offset), int(number))
                return self
        lineidx = Path(f"{self.path}.lineidx")
        if not lineidx.is_file():
            lineidx = self.path.with_suffix(".lineidx")
        entries = self._from_lineidx(lineidx) if lineidx.is_file() else self._scan(progress)
        for key, offset, number in entries:
            if key in self.offsets:
                self.duplicates += 1
                if self.duplicates <= 5:
                    log.warning("%s, line %d: key %r repeated; the first row is used",
                                self.path, number, key)  # fmt: skip
                continue
            self.offsets[key] = (offset, number)
        if cache is not None:
            lines = (f"{k}\t{o}\t{n}\n" for k, (o, n) in self.offsets.items())
            atomic_write_text(cache, "".join(lines))
        return self

    def _scan(self, progress: bool) -> Iterator[tuple[str, int, int]]:
        size = self.path.stat().st_size
        with (
            open(self.path, "rb") as f,
            tqdm(total=size, unit="B", unit_scale=True, desc=f"indexing {self.path.name}",
                 disable=not progress) as bar,
        ):  # fmt: skip
            offset = 0
            for number, line in enumerate(f, start=1):
                key = row_key(line)
                if key is not None:
                    yield key, offset, number
                offset += len(line)
                bar.update(len(line))

    def _from_lineidx(self, lineidx: Path) -> Iterator[tuple[str, int, int]]:
        offsets = [int(x) for x in lineidx.read_text().split()]
        with open(self.path, "rb") as f:
            for number, offset in enumerate(offsets, start=1):
                f.seek(offset)
                key = row_key(f.read(512).split(b"\n", 1)[0])
                if key is not None:
                    yield key, offset, number

    def read(self, key: str) -> tuple[bytes | None, int]:
        """The row of ``key`` (without its key column; None for a line without a tab) and
        its line number."""
        offset, number = self.offsets[key]
        if self._handle is None:
            self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open across rows
        self._handle.seek(offset)
        line = self._handle.readline().rstrip(b"\r\n")
        return (line.split(b"\t", 1)[1] if b"\t" in line else None), number

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


class TsvSet:
    """Several TSVs of one kind looked up by key (exact, else normalised)."""

    def __init__(self, paths: Sequence[str | os.PathLike], cache_dir: Path | None, progress):
        self.files = [TsvFile(Path(p)).index(cache_dir, progress) for p in paths]
        self.normalised: dict[str, tuple[TsvFile, str]] = {}
        for tsv in self.files:
            for key in tsv.offsets:
                self.normalised.setdefault(normalise_key(key), (tsv, key))

    def find(self, key: str) -> tuple[TsvFile, str] | None:
        for tsv in self.files:
            if key in tsv.offsets:
                return tsv, key
        return self.normalised.get(normalise_key(key))

    def read(self, key: str) -> tuple[bytes | None, str] | None:
        """(row, "file:line") of ``key`` (row None: a line without a tab), or None when no
        TSV has it."""
        found = self.find(key)
        if found is None:
            return None
        tsv, tsv_key = found
        row, number = tsv.read(tsv_key)
        return row, f"{tsv.path}:{number}"

    def close(self) -> None:
        for tsv in self.files:
            tsv.close()
