"""An OpenAI-compatible chat-completions client (vLLM, llama.cpp server, hosted APIs).

``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature"}``; the
answer is ``choices[0].message.content``. Standard library only (``urllib``).

Retries with exponential backoff (and jitter; ``Retry-After`` honoured) on HTTP 408, 409,
429, 5xx, connection errors and timeouts. 401 / 403 / 404 raise :class:`LLMFatalError`
(the URL, model or key is wrong: every further request would fail the same way); other
4xx raise :class:`LLMRequestError` for that request only.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})


class LLMError(Exception):
    """Base class of the client's errors."""


class LLMRequestError(LLMError):
    """One request failed (after its retries); other requests may still succeed."""


class LLMFatalError(LLMError):
    """The endpoint refuses every request (bad URL, model or key): stop the run."""


class MalformedResponse(LLMRequestError):
    """HTTP 200 but the body holds no ``choices[0].message.content`` string."""


def chat_url(base_url: str) -> str:
    """``{base_url}/chat/completions``; a URL already ending so is kept."""
    url = base_url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


@dataclass
class ChatClient:
    """A chat-completions endpoint. Thread-safe: one client serves a whole thread pool."""

    base_url: str
    model: str
    api_key: str | None = None
    timeout: float = 120.0
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    temperature: float = 0.0
    max_tokens: int | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if not self.base_url.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"LLM URL {self.base_url!r} must start with http:// or https:// "
                "(e.g. http://localhost:8000/v1)"
            )

    @classmethod
    def from_env(
        cls, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", **kw: Any
    ) -> ChatClient:
        """A client whose key is read from the environment variable ``api_key_env``.

        An unset or empty variable means no ``Authorization`` header (local servers).
        """
        return cls(
            base_url=base_url, model=model, api_key=os.environ.get(api_key_env) or None, **kw
        )

    @property
    def url(self) -> str:
        return chat_url(self.base_url)

    def _body(self, messages: Sequence[dict[str, str]], temperature: float | None) -> bytes:
        body: dict = {
            "model": self.model,
            "messages": list(messages),
            "temperature": self.temperature if temperature is None else temperature,
        }
        if self.max_tokens is not None:
            body["max_tokens"] = self.max_tokens
        return json.dumps(body, ensure_ascii=False).encode()

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + 0.5 * random.random())

    def complete(self, messages: Sequence[dict[str, str]], temperature: float | None = None) -> str:
        """The answer text for ``messages``; raises :class:`LLMRequestError` or
        :class:`LLMFatalError` once retries are exhausted or the error is not transient."""
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        data = self._body(messages, temperature)
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                request = urllib.request.Request(
                    self.url, data=data, headers=headers, method="POST"
                )
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    raw = response.read()
                return parse_completion(raw, self.url)
            except urllib.error.HTTPError as e:
                detail = _excerpt(e.read() if e.fp is not None else b"")
                if e.code in FATAL_STATUS:
                    raise LLMFatalError(
                        f"{self.url} answered HTTP {e.code} ({detail}); check --llm-url, "
                        f"--llm-model ({self.model!r}) and the API key variable"
                    ) from e
                if e.code not in RETRY_STATUS:
                    raise LLMRequestError(f"{self.url} answered HTTP {e.code}: {detail}") from e
                last = f"HTTP {e.code}: {detail}"
                retry_after = e.headers.get("Retry-After") if e.headers else None
            except (
                urllib.error.URLError,
                http.client.HTTPException,
                ConnectionError,
                TimeoutError,
            ) as e:
                last = f"{type(e).__name__}: {getattr(e, 'reason', e)}"
            if attempt < self.max_retries:
                self.sleep(self._delay(attempt, retry_after))
        raise LLMRequestError(f"{self.url}: gave up after {self.max_retries + 1} attempts ({last})")


def parse_completion(raw: bytes, url: str = "endpoint") -> str:
    """``choices[0].message.content`` of a chat-completions response body."""
    try:
        body = json.loads(raw)
        content = body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise MalformedResponse(
            f"{url}: response is not a chat completion ({type(e).__name__}: {e}): {_excerpt(raw)}"
        ) from e
    if not isinstance(content, str):
        raise MalformedResponse(f"{url}: choices[0].message.content is {content!r}, not text")
    return content


def _excerpt(raw: bytes, limit: int = 200) -> str:
    text = raw.decode("utf-8", "replace").strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
