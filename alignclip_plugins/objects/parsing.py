"""The interface every caption object parser backend implements (``pos``, ``llm``, ``vocab``)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Caption:
    """One caption: the input file it came from, its sample key, its text."""

    source: str
    key: str
    text: str


class ObjectParser(ABC):
    """Turns captions into object sets, a batch at a time.

    ``parse_batch`` returns, per caption, its distinct normalised objects in order of
    appearance, or ``None`` when this run could not parse that caption (an LLM request
    that failed after its retries): the shard holding it is then not written, and a
    rerun tries again.
    """

    #: the ``--parser`` name
    name: str = ""
    #: captions per ``parse_batch`` call
    batch_size: int = 1024

    @abstractmethod
    def parse_batch(self, captions: Sequence[Caption]) -> list[list[str] | None]:
        """Objects of each caption (see the class docstring)."""

    @abstractmethod
    def identity(self) -> dict[str, Any]:
        """What makes this parser's output what it is (backend, vocabulary hash, model).

        Recorded in the output directory: a rerun with a different identity is refused
        instead of mixing sidecars of two parsers.
        """

    def counters(self) -> dict[str, int]:
        """Backend-specific counts for the summary (LLM requests, malformed answers)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional hook, nothing to release by default
        """Release resources (flush caches)."""
