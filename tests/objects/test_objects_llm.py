"""The ``llm`` parser: answer parsing, and end to end against a local scripted server."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from alignclip_plugins.llm.fake_server import FakeChatServer, Reply, chat_reply, last_user_message
from alignclip_plugins.llm.prompts import CAPTION_OBJECTS_PROMPT
from alignclip_plugins.objects import cli
from alignclip_plugins.objects.llm_parser import parse_objects_answer
from alignclip_plugins.objects.sidecar import read_sidecar

REPO = Path(__file__).resolve().parents[2]


# the fake LLM server listens on 127.0.0.1: a proxy from the environment must not intercept
pytestmark = pytest.mark.usefixtures("no_proxy")


@pytest.mark.parametrize(
    "answer, objects, malformed",
    [
        ("dog, frisbee, park", ["dog", "frisbee", "park"], False),
        (
            "Dogs, a red Frisbee, and two traffic lights.",
            ["dog", "red frisbee", "traffic light"],
            False,
        ),
        ("Objects: man, horse, beach", ["man", "horse", "beach"], False),
        ("- man\n- horses\n3. beach", ["man", "horse", "beach"], False),
        ("a group of people; bottle of wine", ["person", "bottle", "wine"], False),
        ("<think>the user wants objects</think>cat, stock photo", ["cat"], False),
        ("None.", [], False),
        ("cat, cat, Cats", ["cat"], False),
        ("", [], True),
        (
            "I'm sorry, but there is no image here for me to look at, only a caption, dog",
            ["dog"],
            True,
        ),
    ],
)
def test_parse_objects_answer(answer, objects, malformed):
    found, problem = parse_objects_answer(answer)
    assert found == objects
    assert (problem is not None) == malformed


def write_shard(path: Path, captions: dict[str, str]) -> None:
    with tarfile.open(path, "w") as tar:
        for key, text in captions.items():
            info = tarfile.TarInfo(f"{key}.txt")
            data = text.encode()
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def caption_of(body) -> str:
    prompt = last_user_message(body)
    assert prompt.startswith(CAPTION_OBJECTS_PROMPT + "\n")
    return prompt[len(CAPTION_OBJECTS_PROMPT) + 1 :]


def llm_args(server: FakeChatServer, out: Path, *extra: str) -> list[str]:
    return [
        "--parser",
        "llm",
        "--llm-url",
        server.url,
        "--llm-model",
        "test-model",
        "--llm-backoff",
        "0.001",
        "--llm-retries",
        "2",
        "--llm-timeout",
        "10",
        "--out",
        str(out),
        "--no-progress",
        *extra,
    ]


ANSWERS = {
    "a dog catching a frisbee": "dog, frisbee",
    "two cats on a sofa": "cats, sofa",
    "a man riding a horse": "I am unable to view images, but the caption describes a scene",
    "traffic lights at night": "traffic lights, night",
}


def test_end_to_end_malformed_answer_and_retry_after_500(tmp_path, capsys):
    shard = tmp_path / "train-000000.tar"
    write_shard(shard, {f"k{i}": c for i, c in enumerate(ANSWERS)})
    text = tmp_path / "more.txt"
    text.write_text("two cats on a sofa\n\ntraffic lights at night\n")  # repeats are cached
    failed_once: set[str] = set()

    def responder(body, n):
        caption = caption_of(body)
        if caption == "traffic lights at night" and caption not in failed_once:
            failed_once.add(caption)
            return Reply({"error": "overloaded"}, 500)
        return chat_reply(ANSWERS[caption])

    out = tmp_path / "objects"
    with FakeChatServer(responder, max_requests=20) as server:
        assert cli.main(["parse", str(shard), str(text), *llm_args(server, out)]) == 0
        prompts = [caption_of(b) for b in server.requests]
    assert sorted(prompts) == sorted([*ANSWERS, "traffic lights at night"])  # 4 + 1 retry
    assert server.requests[0]["model"] == "test-model"
    assert read_sidecar(out / "train-000000.objects.jsonl") == {
        "k0": ["dog", "frisbee"],
        "k1": ["cat", "sofa"],
        "k2": [],
        "k3": ["traffic light", "night"],
    }
    assert read_sidecar(out / "more.objects.jsonl") == {
        "1": ["cat", "sofa"],
        "2": [],
        "3": ["traffic light", "night"],
    }
    summary = json.loads((out / "parse-summary.json").read_text())
    assert summary["malformed_answers"] == 1
    assert summary["llm_requests"] == 4 and summary["llm_cache_hits"] == 2
    assert summary["captions"] == 7 and summary["captions_without_objects"] == 2
    [error] = [
        json.loads(line) for line in (out / "malformed-answers.jsonl").read_text().splitlines()
    ]
    assert error["key"] == "k2" and error["source"] == str(shard)
    assert error["answer"] == ANSWERS["a man riding a horse"]
    assert "malformed answers: 1" in capsys.readouterr().out


def test_endpoint_down_then_back_resumes_without_repeating(tmp_path, capsys):
    captions = [f"caption number {i}" for i in range(6)]
    (tmp_path / "a.txt").write_text("\n".join(captions[:3]) + "\n")
    (tmp_path / "b.txt").write_text("\n".join(captions[3:]) + "\n")
    down = {"caption number 4"}

    def responder(body, n):
        caption = caption_of(body)
        if caption in down:
            return Reply({"error": "unavailable"}, 503)
        return chat_reply(f"object {caption[-1]}")

    out = tmp_path / "objects"
    inputs = [str(tmp_path / "a.txt"), str(tmp_path / "b.txt")]
    with FakeChatServer(responder, max_requests=30) as server:
        assert cli.main(["parse", *inputs, *llm_args(server, out)]) == 1
        assert "rerun the same command" in capsys.readouterr().err
        assert (out / "a.objects.jsonl").exists() and not (out / "b.objects.jsonl").exists()
        first = len(server.requests)
        assert first == 5 + 3  # caption 4: 1 try + 2 retries
        down.clear()
        assert cli.main(["parse", *inputs, *llm_args(server, out)]) == 0
        assert [caption_of(b) for b in server.requests[first:]] == ["caption number 4"]
    assert read_sidecar(out / "b.objects.jsonl") == {
        "1": ["object 3"],
        "2": ["object 4"],
        "3": ["object 5"],
    }


def test_killed_run_resumes_from_the_cache(tmp_path):
    captions = [f"scene {i}" for i in range(40)]
    (tmp_path / "captions.txt").write_text("\n".join(captions) + "\n")

    def responder(body, n):
        time.sleep(0.03)
        return chat_reply(f"thing {caption_of(body).split()[-1]}")

    def cached_lines() -> int:
        path = out / "llm-cache.jsonl"
        return path.read_bytes().count(b"\n") if path.exists() else 0

    out = tmp_path / "objects"
    argv = ["parse", str(tmp_path / "captions.txt"), "--llm-workers", "2"]
    with FakeChatServer(responder, max_requests=100) as server:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        command = [sys.executable, "-m", "alignclip_plugins", "objects", *argv]
        process = subprocess.Popen(
            [*command, *llm_args(server, out)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            deadline = time.monotonic() + 60
            while cached_lines() < 8 and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.01)
            assert process.poll() is None, process.stderr.read().decode()
            process.send_signal(signal.SIGKILL)  # mid-run, no chance to clean up
        finally:
            process.wait(timeout=30)
        assert not (out / "captions.objects.jsonl").exists()
        cached = {
            json.loads(line)["caption"]
            for line in (out / "llm-cache.jsonl").read_text().splitlines()
            if line.endswith("}")
        }
        assert 8 <= len(cached) < 40
        before = len(server.requests)
        assert cli.main([*argv, *llm_args(server, out)]) == 0
        again = [caption_of(b) for b in server.requests[before:]]
    assert not cached & set(again)  # nothing answered before the kill is asked again
    assert sorted(again) == sorted(set(captions) - cached)
    sidecar = read_sidecar(out / "captions.objects.jsonl")
    assert sidecar == {str(i + 1): [f"thing {i}"] for i in range(40)}
