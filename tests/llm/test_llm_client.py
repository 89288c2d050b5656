"""The chat client and the concurrent cached runner against a local scripted server."""

from __future__ import annotations

import pytest

from alignclip_plugins.llm.cache import ChatCache
from alignclip_plugins.llm.client import (
    ChatClient,
    LLMFatalError,
    LLMRequestError,
    MalformedResponse,
    chat_url,
)
from alignclip_plugins.llm.fake_server import FakeChatServer, Reply, chat_reply, last_user_message
from alignclip_plugins.llm.prompts import (
    APPEARANCE_PROMPT,
    CAPTION_OBJECTS_PROMPT,
    appearance_messages,
    caption_objects_messages,
)
from alignclip_plugins.llm.runner import ChatRequest, LLMUnavailable, RunnerStats, ask_many

MESSAGES = [{"role": "user", "content": "hello"}]


# the fake LLM server listens on 127.0.0.1: a proxy from the environment must not intercept
pytestmark = pytest.mark.usefixtures("no_proxy")


def make_client(server: FakeChatServer, **kw) -> ChatClient:
    kw.setdefault("timeout", 10)
    kw.setdefault("backoff", 0.001)
    kw.setdefault("max_retries", 3)
    return ChatClient(server.url, "test-model", **kw)


def test_prompts_are_the_supplements_verbatim():
    assert CAPTION_OBJECTS_PROMPT == (
        "The following is a caption for an image. Please directly indicate the objects "
        "contained in it, separated by commas."
    )
    assert APPEARANCE_PROMPT == (
        "Please briefly introduce the appearance of CLASS in ordinary language"
    )
    [message] = caption_objects_messages("a dog\n on  the beach")
    assert message == {"role": "user", "content": CAPTION_OBJECTS_PROMPT + "\na dog on the beach"}
    [message] = appearance_messages("traffic light")
    assert message["content"] == (
        "Please briefly introduce the appearance of traffic light in ordinary language"
    )


def test_chat_url():
    assert chat_url("http://h:1/v1/") == "http://h:1/v1/chat/completions"
    assert chat_url("http://h:1/v1/chat/completions") == "http://h:1/v1/chat/completions"


def test_request_format_answer_and_api_key_from_env(monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-test")
    with FakeChatServer(lambda body, n: chat_reply(f"answer to {last_user_message(body)}")) as s:
        client = ChatClient.from_env(s.url, "m1", api_key_env="MY_KEY", temperature=0.3)
        assert client.complete(MESSAGES) == "answer to hello"
        assert client.complete(MESSAGES, temperature=0.9) == "answer to hello"
    first, second = s.requests
    assert first == {"model": "m1", "messages": MESSAGES, "temperature": 0.3}
    assert second["temperature"] == 0.9
    assert s.headers[0]["Authorization"] == "Bearer sk-test"


def test_no_key_means_no_authorization_header(monkeypatch):
    monkeypatch.delenv("UNSET_KEY_VAR", raising=False)
    with FakeChatServer(lambda body, n: chat_reply("ok")) as s:
        ChatClient.from_env(s.url, "m", api_key_env="UNSET_KEY_VAR").complete(MESSAGES)
    assert "Authorization" not in s.headers[0]


def test_500_then_success_is_retried_with_backoff():
    delays: list[float] = []

    def responder(body, n):
        return Reply({"error": "boom"}, 500) if n < 2 else chat_reply("fine")

    with FakeChatServer(responder) as s:
        client = make_client(s, sleep=delays.append, backoff=0.5, max_backoff=100)
        assert client.complete(MESSAGES) == "fine"
    assert len(s.requests) == 3
    assert len(delays) == 2
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0  # doubling, with jitter


def test_429_honours_retry_after():
    delays: list[float] = []

    def responder(body, n):
        return (
            Reply({"error": "slow down"}, 429, {"Retry-After": "7"}) if n == 0 else chat_reply("ok")
        )

    with FakeChatServer(responder) as s:
        assert make_client(s, sleep=delays.append).complete(MESSAGES) == "ok"
    assert delays == [7.0]


def test_gives_up_after_retries():
    with FakeChatServer(lambda body, n: Reply({"error": "down"}, 503)) as s:
        with pytest.raises(LLMRequestError, match="gave up after 3 attempts.*HTTP 503"):
            make_client(s, max_retries=2).complete(MESSAGES)
    assert len(s.requests) == 3


def test_auth_error_is_fatal_and_not_retried():
    with FakeChatServer(lambda body, n: Reply({"error": "bad key"}, 401)) as s:
        with pytest.raises(LLMFatalError, match="HTTP 401.*bad key"):
            make_client(s).complete(MESSAGES)
    assert len(s.requests) == 1


def test_bad_request_fails_that_request_only():
    with FakeChatServer(lambda body, n: Reply({"error": "context too long"}, 400)) as s:
        with pytest.raises(LLMRequestError, match="HTTP 400") as info:
            make_client(s).complete(MESSAGES)
    assert not isinstance(info.value, LLMFatalError)
    assert len(s.requests) == 1


@pytest.mark.parametrize(
    "reply",
    [Reply(b"<html>not json</html>"), Reply({"choices": []}), chat_reply(None)],
    ids=["not-json", "no-choices", "null-content"],
)
def test_malformed_response_body(reply):
    with FakeChatServer(lambda body, n: reply) as s:
        with pytest.raises(MalformedResponse):
            make_client(s).complete(MESSAGES)


def _closed_port_url() -> str:
    server = FakeChatServer(lambda body, n: chat_reply("x"))
    url = server.url
    server.stop()  # never started: the port is closed now
    return url


def test_endpoint_that_never_answered_fails_at_once_with_the_url_and_option():
    # with default options a refused connection was retried for 94 s before failing
    delays: list[float] = []
    url = _closed_port_url()
    client = ChatClient(url, "m", sleep=delays.append)  # default retries, backoff, timeout
    with pytest.raises(LLMFatalError) as info:
        client.complete(MESSAGES)
    message = str(info.value)
    assert f"cannot connect to the LLM endpoint {url}/chat/completions" in message
    assert "Connection refused" in message and "check --llm-url" in message
    assert delays == []  # no retry, no backoff


def test_endpoint_that_accepts_but_never_answers_names_the_timeout_option():
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # the kernel completes the handshake; nobody ever answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        with pytest.raises(
            LLMFatalError, match=r"sent no answer within 0\.3 s: raise --llm-timeout"
        ):
            ChatClient(url, "m", timeout=0.3, sleep=lambda d: None).complete(MESSAGES)
    finally:
        listener.close()


def test_endpoint_that_answered_before_is_retried_with_backoff_when_it_goes_down():
    delays: list[float] = []
    server = FakeChatServer(lambda body, n: chat_reply("first")).start()
    client = make_client(server, max_retries=2, backoff=0.5, max_backoff=100, sleep=delays.append)
    assert client.complete(MESSAGES) == "first"
    server.stop()  # the endpoint goes away mid-run: transient until proven otherwise
    with pytest.raises(LLMRequestError, match="gave up after 3 attempts") as info:
        client.complete(MESSAGES)
    assert not isinstance(info.value, LLMFatalError)
    assert len(delays) == 2 and 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0


def test_describe_with_a_wrong_url_fails_fast(tmp_path, capsys):
    from alignclip_plugins.descriptions import cli

    names = tmp_path / "classes.txt"
    names.write_text("cat\ndog\n")
    url = _closed_port_url()
    argv = ["--classnames", str(names), "--out", str(tmp_path / "d.json"), "--llm-url", url,
            "--llm-model", "m", "--no-progress"]  # fmt: skip
    assert cli.main(argv) == 1  # default --llm-retries 5, --llm-backoff 1
    err = capsys.readouterr().err
    assert f"cannot connect to the LLM endpoint {url}/chat/completions" in err
    assert "check --llm-url" in err and "requests in a row failed" not in err
    assert not (tmp_path / "d.json").exists()


SECRET = "sk-test-0123456789abcdefSECRET"


def _echo_headers(status):
    """A server that puts the request's headers into its error body, as some proxies do."""

    def responder(body, n):
        return Reply({"error": "denied", "echo": f"Authorization: Bearer {SECRET}"}, status)

    return responder


@pytest.mark.parametrize("status", [401, 400, 503])
def test_api_key_is_redacted_from_errors_logs_and_repr(monkeypatch, tmp_path, caplog, status):
    import logging

    monkeypatch.setenv("SECRET_KEY_VAR", SECRET)
    with FakeChatServer(_echo_headers(status)) as s:
        client = ChatClient.from_env(
            s.url, "m", api_key_env="SECRET_KEY_VAR", backoff=0.001, max_retries=1
        )
        assert SECRET not in repr(client) and "api_key" not in repr(client)
        requests = [ChatRequest(i, [{"role": "user", "content": f"q{i}"}]) for i in range(2)]
        with caplog.at_level(logging.DEBUG), ChatCache(tmp_path / "c.jsonl") as cache:
            try:
                results = list(ask_many(client, cache, requests, workers=1))
                errors = [r.error for r in results]
            except LLMFatalError as e:
                errors = [str(e)]
        assert s.headers[0]["Authorization"] == f"Bearer {SECRET}"  # the key was sent
    assert errors and all(SECRET not in e and "[redacted]" in e for e in errors)
    assert SECRET not in caplog.text
    assert SECRET not in (tmp_path / "c.jsonl").read_text()


def test_a_missing_openai_package_names_the_extra(monkeypatch, tmp_path, capsys):
    import sys

    from alignclip_plugins.descriptions import cli

    monkeypatch.setitem(sys.modules, "openai", None)  # import openai -> ImportError
    with pytest.raises(LLMFatalError, match=r"pip install 'alignclip-plugins\[llm\]'"):
        ChatClient("http://127.0.0.1:9/v1", "m")
    names = tmp_path / "classes.txt"
    names.write_text("cat\n")
    argv = ["--classnames", str(names), "--out", str(tmp_path / "d.json"),
            "--llm-url", "http://127.0.0.1:9/v1", "--llm-model", "m"]  # fmt: skip
    assert cli.main(argv) == 1
    assert "alignclip-plugins[llm]" in capsys.readouterr().err


def test_ask_many_caches_dedupes_and_resumes(tmp_path):
    def responder(body, n):
        return chat_reply(last_user_message(body).upper())

    requests = [ChatRequest(i, [{"role": "user", "content": w}]) for i, w in enumerate("abcab")]
    with FakeChatServer(responder) as s:
        client = make_client(s)
        with ChatCache(tmp_path / "c.jsonl") as cache:
            stats = RunnerStats()
            results = {r.id: r for r in ask_many(client, cache, requests, workers=3, stats=stats)}
        assert {i: r.answer for i, r in results.items()} == {0: "A", 1: "B", 2: "C", 3: "A", 4: "B"}
        assert sorted(s.prompts()) == ["a", "b", "c"]  # identical questions asked once
        assert stats.requests == 3 and stats.failed == 0
        with ChatCache(tmp_path / "c.jsonl") as cache:
            stats = RunnerStats()
            again = {r.id: r for r in ask_many(client, cache, requests, stats=stats)}
        assert all(r.cached for r in again.values()) and stats.cache_hits == 5
        assert len(s.requests) == 3  # nothing asked again


def test_ask_many_reports_failures_and_stops_when_endpoint_is_down(tmp_path):
    def responder(body, n):
        text = last_user_message(body)
        return Reply({"error": "no"}, 503) if text.startswith("bad") else chat_reply(text)

    requests = [
        ChatRequest(i, [{"role": "user", "content": t}])
        for i, t in enumerate(["ok1", "bad1", "ok2"])
    ]
    with FakeChatServer(responder) as s, ChatCache(tmp_path / "c.jsonl") as cache:
        client = make_client(s, max_retries=1)
        results = {r.id: r for r in ask_many(client, cache, requests, workers=2)}
        assert results[1].answer is None and "HTTP 503" in results[1].error
        assert results[0].answer == "ok1" and results[2].answer == "ok2"
        assert len(cache) == 2  # failures are not cached
        down = [ChatRequest(i, [{"role": "user", "content": f"bad{i}"}]) for i in range(10)]
        with pytest.raises(LLMUnavailable, match="3 requests in a row failed"):
            list(ask_many(client, cache, down, workers=1, max_consecutive_failures=2))


def test_url_without_scheme_is_refused():
    with pytest.raises(ValueError, match="must start with http:// or https://"):
        ChatClient("localhost:8000/v1", "m")
