"""Many chat requests at once: cache first, then a bounded thread pool against the endpoint.

Answers are recorded in the :class:`~alignclip_plugins.llm.cache.ChatCache` as they
arrive (from the calling thread), so an interrupted run loses nothing already answered
and a rerun asks only for what is missing. Identical requests (same model, messages and
variant) are sent once.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from alignclip_plugins.llm.cache import ChatCache, cache_key
from alignclip_plugins.llm.client import ChatClient, LLMError, LLMFatalError, LLMRequestError


class LLMUnavailable(LLMError):
    """Too many requests in a row failed after their retries: the endpoint looks down."""


@dataclass(frozen=True)
class ChatRequest:
    """One question: ``id`` is the caller's handle, ``meta`` goes into the cache line."""

    id: Hashable
    messages: list[dict[str, str]]
    variant: int = 0
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ChatResult:
    """The answer to request ``id`` (``error`` set and ``answer`` None when it failed)."""

    id: Hashable
    answer: str | None
    error: str | None = None
    cached: bool = False


@dataclass
class RunnerStats:
    """Counters over one or more :func:`ask_many` calls."""

    requests: int = 0  # sent to the endpoint (distinct, uncached)
    cache_hits: int = 0
    failed: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "cache_hits": self.cache_hits, "failed": self.failed}


def ask_many(
    client: ChatClient,
    cache: ChatCache,
    requests: Iterable[ChatRequest],
    workers: int = 8,
    temperature: float | None = None,
    max_consecutive_failures: int = 20,
    stats: RunnerStats | None = None,
    cache_if: Callable[[str], bool] | None = None,
) -> Iterator[ChatResult]:
    """Yield one :class:`ChatResult` per request: cached ones at once, the others as they
    complete (not in input order).

    A request that still fails after the client's retries yields a result with ``error``.
    :class:`LLMFatalError` (bad URL / model / key) and :class:`LLMUnavailable` (more than
    ``max_consecutive_failures`` failures in a row) stop the iteration; the cache holds
    every answer received before that. ``cache_if`` (default: every answer) decides which
    answers are worth keeping: the others are yielded but asked again by a later run.
    """
    stats = stats if stats is not None else RunnerStats()
    workers = max(1, int(workers))
    waiting: dict[str, list[ChatRequest]] = {}  # key -> requests sharing it (one in flight)
    futures: dict[cf.Future, str] = {}
    consecutive = 0
    pool = cf.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="llm")
    clean = False

    def finish(done: cf.Future) -> Iterator[ChatResult]:
        nonlocal consecutive
        key = futures.pop(done)
        group = waiting.pop(key)
        try:
            answer = done.result()
        except LLMFatalError:
            raise
        except LLMRequestError as e:
            stats.failed += len(group)
            consecutive += 1
            if consecutive > max_consecutive_failures:
                raise LLMUnavailable(
                    f"{consecutive} requests in a row failed after retries (last: {e}); "
                    f"is {client.url} up? Answers so far are cached in {cache.path}; "
                    "rerun the same command to resume."
                ) from e
            for request in group:
                yield ChatResult(request.id, None, error=str(e))
            return
        consecutive = 0
        if cache_if is None or cache_if(answer):
            cache.put(key, answer, model=client.model, variant=group[0].variant, **group[0].meta)
        for request in group:
            yield ChatResult(request.id, answer)

    try:
        for request in requests:
            key = cache_key(client.model, request.messages, request.variant)
            cached = cache.get(key)
            if cached is not None:
                stats.cache_hits += 1
                yield ChatResult(request.id, cached, cached=True)
                continue
            if key in waiting:  # the same question is already in flight
                waiting[key].append(request)
                continue
            waiting[key] = [request]
            stats.requests += 1
            future = pool.submit(client.complete, request.messages, temperature)
            futures[future] = key
            while len(futures) >= 4 * workers:
                done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
                for future in done:
                    yield from finish(future)
        while futures:
            done, _ = cf.wait(futures, return_when=cf.FIRST_COMPLETED)
            for future in done:
                yield from finish(future)
        clean = True
    finally:
        # On an error or an abandoned generator: drop queued requests, don't wait for
        # the ones in flight (their answers are lost, everything received is cached).
        pool.shutdown(wait=clean, cancel_futures=True)
        cache.flush()
