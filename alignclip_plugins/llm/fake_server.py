"""A tiny OpenAI-compatible chat-completions server on 127.0.0.1 with scripted answers.

For tests and offline dry runs of the LLM tools: a ``responder(body, n)`` function gets
each request's JSON body and its 0-based arrival number and returns a :class:`Reply`.
Every request is recorded; past ``max_requests`` the server answers 503 and counts the
overflow, so a runaway client cannot loop forever against it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """An HTTP answer: a JSON-serialisable body (or raw bytes), status and headers."""

    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)


def chat_reply(content: str | None, model: str = "fake") -> Reply:
    """A successful chat completion whose ``choices[0].message.content`` is ``content``."""
    return Reply(
        {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": content},
                    "finish_reason": "stop",
                }
            ],
        }
    )


def last_user_message(body: dict[str, Any]) -> str:
    """The content of the last ``user`` message of a request body."""
    return next(m["content"] for m in reversed(body["messages"]) if m["role"] == "user")


class FakeChatServer:
    """Serve ``responder`` at ``self.url`` (``http://127.0.0.1:PORT/v1``) in a thread."""

    def __init__(
        self, responder: Callable[[dict[str, Any], int], Reply], max_requests: int = 1000
    ) -> None:
        self.responder = responder
        self.max_requests = max_requests
        self.requests: list[dict[str, Any]] = []  # bodies, in arrival order
        self.headers: list[Message] = []  # per request; names are case-insensitive
        self.overflow = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                with server._lock:
                    n = len(server.requests)
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body = {"invalid": raw.decode("utf-8", "replace")}
                    server.requests.append(body)
                    server.headers.append(self.headers)
                    over = n >= server.max_requests
                    server.overflow += over
                if over:
                    reply = Reply({"error": "fake server request budget exhausted"}, 503)
                elif self.path.rstrip("/") != "/v1/chat/completions":
                    reply = Reply({"error": f"no route {self.path}"}, 404)
                else:
                    try:
                        reply = server.responder(body, n)
                    except Exception as e:  # a broken script must not hang the client
                        reply = Reply({"error": f"responder raised {e!r}"}, 500)
                data = (
                    reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
                )
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        class Server(ThreadingHTTPServer):
            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # a client that went away (killed, timed out) is not the server's error

        self._httpd = Server(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    def prompts(self) -> list[str]:
        """The last user message of every request received, in arrival order."""
        with self._lock:
            return [last_user_message(b) for b in self.requests if "messages" in b]

    def start(self) -> FakeChatServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the port (a later connection is refused)."""
        if self._thread.is_alive():
            self._httpd.shutdown()
            self._thread.join(timeout=10)
        self._httpd.server_close()

    def __enter__(self) -> FakeChatServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
