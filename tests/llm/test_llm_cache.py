"""The persistent answer cache: reload, crash tolerance, keys."""

from __future__ import annotations

import json

import pytest

from alignclip_plugins.llm.cache import ChatCache, cache_key

M = [{"role": "user", "content": "q"}]


def test_answers_survive_reopen_with_metadata(tmp_path):
    path = tmp_path / "sub" / "cache.jsonl"
    with ChatCache(path, sync_every=2) as cache:
        cache.put("k1", "a1", caption="c1")
        cache.put("k2", "a2")
        cache.put("k3", "a3")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {"k": "k1", "answer": "a1", "caption": "c1"}
    reopened = ChatCache(path)
    assert len(reopened) == 3 and reopened.get("k2") == "a2" and "k3" in reopened
    assert reopened.get("missing") is None
    reopened.close()


def test_answers_reach_the_file_before_any_flush(tmp_path):
    path = tmp_path / "cache.jsonl"
    cache = ChatCache(path, sync_every=1000)
    cache.put("k1", "a1")
    assert ChatCache(path).get("k1") == "a1"  # a killed process would not lose it
    cache.close()


def test_truncated_last_line_is_dropped_and_cut(tmp_path):
    path = tmp_path / "cache.jsonl"
    with ChatCache(path) as cache:
        cache.put("k1", "a1")
    with open(path, "ab") as f:
        f.write(b'{"k": "k2", "answ')  # a crash in the middle of a write
    with ChatCache(path) as cache:
        assert len(cache) == 1 and cache.get("k1") == "a1"
        cache.put("k3", "a3")
    with ChatCache(path) as cache:
        assert {k: cache.get(k) for k in ("k1", "k2", "k3")} == {"k1": "a1", "k2": None, "k3": "a3"}


def test_damaged_line_in_the_middle_names_it(tmp_path):
    path = tmp_path / "cache.jsonl"
    path.write_text('{"k": "a", "answer": "x"}\nnot json\n{"k": "b", "answer": "y"}\n')
    with pytest.raises(ValueError, match=r"cache.jsonl, line 2: not a cache record"):
        ChatCache(path)


def test_key_depends_on_model_messages_and_variant():
    base = cache_key("m", M)
    assert base == cache_key("m", [dict(M[0])])
    assert base == cache_key("m", M, variant=0)
    assert (
        len(
            {
                base,
                cache_key("m2", M),
                cache_key("m", M, 1),
                cache_key("m", [{"role": "user", "content": "r"}]),
            }
        )
        == 4
    )
