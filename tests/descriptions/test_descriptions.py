"""``alignclip describe`` against a local scripted server: prompt, variants, resume, errors."""

from __future__ import annotations

import json

import pytest

from alignclip_plugins.descriptions import cli
from alignclip_plugins.descriptions.generate import (
    clean_description,
    load_descriptions,
    read_classnames,
    read_vocabulary_names,
)
from alignclip_plugins.llm.fake_server import FakeChatServer, Reply, chat_reply, last_user_message

PREFIX = "Please briefly introduce the appearance of "
SUFFIX = " in ordinary language"


# the fake LLM server listens on 127.0.0.1: a proxy from the environment must not intercept
pytestmark = pytest.mark.usefixtures("no_proxy")


def name_of(body) -> str:
    prompt = last_user_message(body)
    assert prompt.startswith(PREFIX) and prompt.endswith(SUFFIX), prompt
    return prompt[len(PREFIX) : -len(SUFFIX)]


def args(server, out, *extra):
    return [
        "--out",
        str(out),
        "--llm-url",
        server.url,
        "--llm-model",
        "m",
        "--llm-backoff",
        "0.001",
        "--llm-retries",
        "1",
        "--no-progress",
        *extra,
    ]


def test_describe_vocabulary_with_variants_and_resume(tmp_path, capsys):
    vocab = tmp_path / "object-vocabulary.json"
    vocab.write_text(
        json.dumps(
            {
                "objects": [
                    {"name": "traffic light", "count": 9, "tail": False},
                    {"name": "red circle", "count": 1, "tail": True},
                ],
                "tail_fraction": 0.3,
                "min_count": 1,
                "num_captions": 10,
                "num_objects_parsed": 10,
            }
        )
    )

    def responder(body, n):
        return chat_reply(f"  A {name_of(body)}, take {n} (t={body['temperature']}).\n")

    out = tmp_path / "descriptions.json"
    with FakeChatServer(responder, max_requests=10) as server:
        assert cli.main(["--vocabulary", str(vocab), "--n", "2", *args(server, out)]) == 0
        assert len(server.requests) == 4
        assert sorted(name_of(b) for b in server.requests) == [
            "red circle",
            "red circle",
            "traffic light",
            "traffic light",
        ]
        assert {b["temperature"] for b in server.requests} == {0.7}  # n > 1 samples
        descriptions = load_descriptions(out)
        assert list(descriptions) == ["traffic light", "red circle"]
        assert all(len(set(texts)) == 2 for texts in descriptions.values())
        assert descriptions["red circle"][0].startswith("A red circle, take ")
        out.unlink()
        assert cli.main(["--vocabulary", str(vocab), "--n", "2", *args(server, out)]) == 0
        assert len(server.requests) == 4  # everything came from the cache
        assert load_descriptions(out) == descriptions
    assert "4 from the cache" in capsys.readouterr().out


def test_failures_are_reported_and_a_rerun_fills_them_in(tmp_path, capsys):
    names = tmp_path / "classnames.txt"
    names.write_text("# ImageNet-style\ngoldfish\ngreat white shark\n\ntench\ngoldfish\n")
    broken = {"great white shark", "tench"}

    def responder(body, n):
        name = name_of(body)
        if name == "tench":
            return chat_reply("   ")  # an empty answer: malformed, left out
        if name in broken:
            return Reply({"error": "busy"}, 503)
        return chat_reply(f"{name} looks like a {name}")

    out = tmp_path / "imagenet.json"
    with FakeChatServer(responder, max_requests=20) as server:
        assert cli.main(["--classnames", str(names), *args(server, out)]) == 1
        err = capsys.readouterr().err
        assert "2 names lack descriptions" in err and "'great white shark'" in err
        assert load_descriptions(out) == {"goldfish": ["goldfish looks like a goldfish"]}
        assert {b["temperature"] for b in server.requests} == {0.0}
        broken.clear()
        before = len(server.requests)
        assert cli.main(["--classnames", str(names), *args(server, out)]) == 1  # tench still empty
        assert sorted(name_of(b) for b in server.requests[before:]) == [
            "great white shark",
            "tench",
        ]
    assert list(load_descriptions(out)) == ["goldfish", "great white shark"]


def test_fatal_endpoint_error_stops_with_a_clear_message(tmp_path, capsys):
    names = tmp_path / "c.txt"
    names.write_text("cat\n")
    with FakeChatServer(lambda body, n: Reply({"error": "invalid api key"}, 401)) as server:
        assert cli.main(["--classnames", str(names), *args(server, tmp_path / "d.json")]) == 1
        assert len(server.requests) == 1
    assert "HTTP 401" in capsys.readouterr().err
    assert not (tmp_path / "d.json").exists()


def test_name_sources(tmp_path):
    synthetic = tmp_path / "vocabulary.json"
    synthetic.write_text(json.dumps({"red circle": ["red circles"], "blue square": ["azure box"]}))
    assert read_vocabulary_names(synthetic) == ["red circle", "blue square"]
    listed = tmp_path / "classes.json"
    listed.write_text(json.dumps(["Granny Smith", "  tench ", "tench"]))
    assert read_classnames(listed) == ["Granny Smith", "tench"]
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    with pytest.raises(ValueError, match="empty.txt holds no class names"):
        read_classnames(empty)
    assert clean_description("<think>hmm</think>\n A red disc. ") == "A red disc."
    assert clean_description(" \n") is None
    bad = tmp_path / "bad.json"
    bad.write_text('{"cat": "a cat"}')
    with pytest.raises(ValueError, match="bad.json"):
        load_descriptions(bad)
