"""An OpenAI-compatible chat-completions client (vLLM, llama.cpp server, hosted APIs).

The transport is the official ``openai`` package (an optional extra:
``pip install 'alignclip-plugins[llm]'``): base URL, key header, timeouts, HTTP errors.
``POST {base_url}/chat/completions`` with ``{"model", "messages", "temperature"}``; the
answer is ``choices[0].message.content``. This module adds the project's own rules:

* **Fail fast on an endpoint that never answered.** Until the first HTTP answer (any
  status), a refused connection, an unknown host, no connection within
  :data:`CONNECT_TIMEOUT` seconds or no answer within ``timeout`` raises
  :class:`LLMFatalError` at once, naming the URL and the option to change: retrying a
  wrong ``--llm-url`` only delays the error (with default options it took 94 s).
* **Retries with backoff for an endpoint that answered before**: connection errors,
  timeouts and HTTP 408, 409, 425, 429, 5xx are retried ``max_retries`` times, the delay
  doubling from ``backoff`` seconds (with jitter; ``Retry-After`` honoured). The
  package's own retries are off, so that this schedule (``--llm-retries``,
  ``--llm-backoff``) is the only one.
* 401 / 403 / 404 raise :class:`LLMFatalError` (the URL, model or key is wrong: every
  further request would fail the same way); other 4xx raise :class:`LLMRequestError` for
  that request only.
* **The API key never leaves the request header**: not in ``repr``, and every error
  message (hence every log line and error file) is redacted for it, server bodies
  included (a server that echoes the ``Authorization`` header).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

RETRY_STATUS = frozenset({408, 409, 425, 429, 500, 502, 503, 504})
FATAL_STATUS = frozenset({401, 403, 404})
CONNECT_TIMEOUT = 5.0  # seconds to open a connection: a few, so a wrong URL fails fast
REDACTED = "[redacted]"
MISSING_OPENAI = (
    "the LLM tools talk to the endpoint through the `openai` package, which is not "
    "installed: pip install 'alignclip-plugins[llm]' (or: pip install openai)"
)


class LLMError(RuntimeError):
    """Base class of the client's errors."""


class LLMRequestError(LLMError):
    """One request failed (after its retries); other requests may still succeed."""


class LLMFatalError(LLMError):
    """No request can succeed (bad URL, model or key, unreachable endpoint, the ``openai``
    package missing): stop the run."""


class MalformedResponse(LLMRequestError):
    """HTTP 200 but the body holds no ``choices[0].message.content`` string."""


def openai_module():
    """The ``openai`` package, or :class:`LLMFatalError` naming the extra that installs it."""
    try:
        import openai
    except ImportError:
        raise LLMFatalError(MISSING_OPENAI) from None
    return openai


def chat_url(base_url: str) -> str:
    """``{base_url}/chat/completions``; a URL already ending so is kept."""
    url = base_url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def api_base(base_url: str) -> str:
    """The base URL the ``openai`` client appends ``/chat/completions`` to."""
    url = base_url.rstrip("/")
    return url[: -len("/chat/completions")] if url.endswith("/chat/completions") else url


@dataclass
class ChatClient:
    """A chat-completions endpoint. Thread-safe: one client serves a whole thread pool."""

    base_url: str
    model: str
    api_key: str | None = field(default=None, repr=False)
    timeout: float = 120.0
    max_retries: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    temperature: float = 0.0
    max_tokens: int | None = None
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)
    connect_timeout: float = CONNECT_TIMEOUT
    _sdk: Any = field(default=None, init=False, repr=False, compare=False)
    _answered: threading.Event = field(
        default_factory=threading.Event, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        if not self.base_url.lower().startswith(("http://", "https://")):
            raise ValueError(
                f"LLM URL {self.base_url!r} must start with http:// or https:// "
                "(e.g. http://localhost:8000/v1)"
            )
        openai = openai_module()
        self._sdk = openai.OpenAI(
            base_url=api_base(self.base_url),
            # a key the package insists on; never sent without one (see complete())
            api_key=self.api_key or "no-key",
            timeout=openai.Timeout(self.timeout, connect=min(self.connect_timeout, self.timeout)),
            max_retries=0,
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

    def redact(self, text: str) -> str:
        """``text`` with the API key replaced by ``[redacted]``."""
        return text.replace(self.api_key, REDACTED) if self.api_key else text

    def _delay(self, attempt: int, retry_after: str | None) -> float:
        if retry_after:
            try:
                return min(self.max_backoff, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own schedule
        base = min(self.max_backoff, self.backoff * (2**attempt))
        return base * (0.5 + 0.5 * random.random())

    def _request(self, messages: Sequence[dict[str, str]], temperature: float | None) -> bytes:
        """One request through the ``openai`` package; the raw response body."""
        options: dict[str, Any] = {}
        if self.max_tokens is not None:
            options["max_tokens"] = self.max_tokens
        if not self.api_key:
            options["extra_headers"] = {"Authorization": openai_module().Omit()}
        response = self._sdk.chat.completions.with_raw_response.create(
            model=self.model,
            messages=list(messages),
            temperature=self.temperature if temperature is None else temperature,
            **options,
        )
        return response.http_response.content

    def complete(self, messages: Sequence[dict[str, str]], temperature: float | None = None) -> str:
        """The answer text for ``messages``; raises :class:`LLMRequestError` or
        :class:`LLMFatalError` once retries are exhausted or the error is not transient."""
        openai = openai_module()
        last = ""
        for attempt in range(self.max_retries + 1):
            retry_after = None
            try:
                raw = self._request(messages, temperature)
            except openai.APIStatusError as e:
                self._answered.set()
                detail = _excerpt(e.response.content, self.redact)
                if e.status_code in FATAL_STATUS:
                    raise LLMFatalError(
                        f"{self.url} answered HTTP {e.status_code} ({detail}); check --llm-url, "
                        f"--llm-model ({self.model!r}) and the API key variable"
                    ) from None
                if e.status_code not in RETRY_STATUS:
                    raise LLMRequestError(
                        f"{self.url} answered HTTP {e.status_code}: {detail}"
                    ) from None
                last = f"HTTP {e.status_code}: {detail}"
                retry_after = e.response.headers.get("Retry-After")
            except openai.APIConnectionError as e:
                if not self._answered.is_set():
                    raise LLMFatalError(self._unreachable(e)) from None
                last = self.redact(_connection_reason(e))
            else:
                self._answered.set()
                return parse_completion(raw, self.url, self.redact)
            if attempt < self.max_retries:
                self.sleep(self._delay(attempt, retry_after))
        raise LLMRequestError(f"{self.url}: gave up after {self.max_retries + 1} attempts ({last})")

    def _unreachable(self, error: Exception) -> str:
        """The message for an endpoint that failed before it ever answered."""
        cause = type(error.__cause__).__name__ if error.__cause__ is not None else ""
        if cause == "ConnectTimeout":
            return (
                f"no connection to the LLM endpoint {self.url} within {self.connect_timeout:g} s "
                "(it has not answered any request yet): check --llm-url (host and port) and "
                "that this machine can reach it"
            )
        if "Timeout" in cause:
            return (
                f"the LLM endpoint {self.url} accepted the connection but sent no answer "
                f"within {self.timeout:g} s: raise --llm-timeout for a slow model, or check "
                "the server's log"
            )
        return self.redact(
            f"cannot connect to the LLM endpoint {self.url} ({_connection_reason(error)}; it "
            "has not answered any request yet): check --llm-url (is the server running, on "
            "that host and port?)"
        )


def _connection_reason(error: Exception) -> str:
    cause = error.__cause__
    if cause is None:
        return f"{type(error).__name__}: {error}"
    return f"{type(cause).__name__}: {cause}" if str(cause) else type(cause).__name__


def parse_completion(raw: bytes, url: str = "endpoint", redact: Callable[[str], str] = str) -> str:
    """``choices[0].message.content`` of a chat-completions response body (error messages
    go through ``redact``)."""
    try:
        body = json.loads(raw)
        content = body["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as e:
        raise MalformedResponse(
            f"{url}: response is not a chat completion ({type(e).__name__}: "
            f"{redact(str(e))}): {_excerpt(raw, redact)}"
        ) from None
    if not isinstance(content, str):
        raise MalformedResponse(f"{url}: choices[0].message.content is {content!r}, not text")
    return content


def _excerpt(raw: bytes, redact: Callable[[str], str] = str, limit: int = 200) -> str:
    """The start of a response body, redacted before it is cut (no partial key shows)."""
    text = redact(raw.decode("utf-8", "replace")).strip().replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."
