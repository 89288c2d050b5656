"""Persistent LLM answer cache: an append-only JSONL file, one answer a line.

Each line is ``{"k": KEY, "answer": TEXT, ...caller metadata}``, ``KEY`` being
:func:`cache_key` of (model, messages, variant). Lines are appended (and handed to the OS) as answers arrive,
so a killed process loses none; they are ``fsync``'ed every ``sync_every`` answers and on
:meth:`ChatCache.flush` / :meth:`ChatCache.close`, so a power loss costs at most the last
unsynced batch.
A crash in the middle of a write leaves a truncated last line: it is dropped (and cut from
the file) on the next open. A damaged line anywhere else stops with an error naming it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def cache_key(model: str, messages: Sequence[dict[str, str]], variant: int = 0) -> str:
    """The cache key of one request: a hash of the model, the messages and the variant.

    ``variant`` tells apart repeated samples of the same prompt (``describe --n 3``).
    """
    payload = json.dumps(
        [model, list(messages), int(variant)], sort_keys=True, ensure_ascii=False
    ).encode()
    return hashlib.sha256(payload).hexdigest()[:32]


class ChatCache:
    """Answers by cache key, loaded from and appended to ``path`` (created if missing)."""

    def __init__(self, path: str | os.PathLike, sync_every: int = 64) -> None:
        self.path = Path(path)
        self.sync_every = max(1, int(sync_every))
        self._answers: dict[str, str] = {}
        self._lock = threading.Lock()
        self._unsynced = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._load()
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in close()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # everything after the last newline is a partial line
        if end < len(data):
            tail = data[end:]
            log.warning(
                "%s: dropping a truncated last line (%d bytes) left by an interrupted run",
                self.path,
                len(tail),
            )
            with open(self.path, "r+b") as f:
                f.truncate(end)
                f.flush()
                os.fsync(f.fileno())
        for number, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                key, answer = record["k"], record["answer"]
                if not isinstance(key, str) or not isinstance(answer, str):
                    raise TypeError("'k' and 'answer' must be strings")
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(
                    f"{self.path}, line {number}: not a cache record ({e}). The cache is "
                    "append-only JSONL; delete that line (or the whole file, to ask the LLM "
                    "again) and rerun."
                ) from e
            self._answers[key] = answer

    def __len__(self) -> int:
        return len(self._answers)

    def __contains__(self, key: object) -> bool:
        return key in self._answers

    def get(self, key: str) -> str | None:
        """The cached answer for ``key``, or ``None``."""
        return self._answers.get(key)

    def put(self, key: str, answer: str, **meta: Any) -> None:
        """Record ``answer`` for ``key`` (with JSON-serialisable ``meta``) and append it."""
        line = json.dumps({"k": key, "answer": answer, **meta}, ensure_ascii=False) + "\n"
        with self._lock:
            if self._file.closed:
                raise ValueError(f"cache {self.path} is closed")
            self._answers[key] = answer
            self._file.write(line.encode())
            self._file.flush()  # in the OS at once: a killed process loses no answer
            self._unsynced += 1
            if self._unsynced >= self.sync_every:
                self._sync()

    def _sync(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._unsynced = 0

    def flush(self) -> None:
        """Write every pending answer to disk (``fsync``)."""
        with self._lock:
            if not self._file.closed:
                self._sync()

    def close(self) -> None:
        """Flush and close the file; the in-memory answers stay readable."""
        with self._lock:
            if not self._file.closed:
                self._sync()
                self._file.close()

    def __enter__(self) -> ChatCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
