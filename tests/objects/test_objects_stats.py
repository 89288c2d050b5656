"""Object vocabulary: counts, min-count, the long tail, the vocabulary file, Table 1, the plot."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from alignclip_plugins.objects.sidecar import write_sidecar
from alignclip_plugins.objects.stats import (
    ObjectCounts,
    build_vocabulary,
    count_objects,
    load_object_vocabulary,
    plot_frequencies,
    table_row,
    write_vocabulary,
)


def counts_of(freqs: dict[str, int], captions: int = 100, empty: int = 0) -> ObjectCounts:
    return ObjectCounts(Counter(freqs), captions, empty)


def test_counts_are_per_caption_over_all_sidecars(tmp_path):
    write_sidecar(tmp_path / "a.objects.jsonl", [("1", ["dog", "cat"]), ("2", [])])
    write_sidecar(tmp_path / "b.objects.jsonl", [("3", ["dog", "dog"]), ("4", ["ball"])])
    counts = count_objects([tmp_path])
    assert counts.counts == Counter({"dog": 2, "cat": 1, "ball": 1})
    assert counts.num_captions == 4 and counts.captions_without_objects == 1


def test_order_tail_and_ties():
    freqs = {f"o{i}": 10 - i for i in range(10)}  # o0: 10 ... o9: 1
    freqs["a-tie"] = 2  # ties with o8: name order decides
    vocab = build_vocabulary(counts_of(freqs), tail_fraction=0.3)
    names = [o["name"] for o in vocab["objects"]]
    assert names == ["o0", "o1", "o2", "o3", "o4", "o5", "o6", "o7", "a-tie", "o8", "o9"]
    assert [o["name"] for o in vocab["objects"] if o["tail"]] == ["a-tie", "o8", "o9"]  # floor(3.3)
    assert vocab["num_tail_objects"] == 3 and vocab["num_distinct_objects"] == 11
    assert vocab["num_objects_parsed"] == sum(freqs.values())


def test_min_count_drops_rare_objects_before_the_tail():
    vocab = build_vocabulary(
        counts_of({"a": 5, "b": 3, "c": 1, "d": 1}), min_count=2, tail_fraction=0.5
    )
    assert [(o["name"], o["tail"]) for o in vocab["objects"]] == [("a", False), ("b", True)]
    assert vocab["min_count"] == 2


@pytest.mark.parametrize("parsed, tail", [(109_341, 32_802), (276_123, 82_836), (330_982, 99_294)])
def test_tail_size_matches_the_supplements_table_1(parsed, tail):
    vocab = build_vocabulary(counts_of({f"o{i}": 1 + i % 7 for i in range(parsed)}))
    assert vocab["num_tail_objects"] == tail
    assert sum(o["tail"] for o in vocab["objects"]) == tail


@pytest.mark.parametrize("fraction, min_count", [(1.5, 1), (-0.1, 1), (0.3, 0)])
def test_bad_options(fraction, min_count):
    with pytest.raises(ValueError):
        build_vocabulary(counts_of({"a": 1}), fraction, min_count)


def test_vocabulary_file_round_trip(tmp_path):
    vocab = build_vocabulary(
        counts_of({"dog": 3, "caf\u00e9": 1, "cat": 2}, 7, 2), tail_fraction=0.34
    )
    path = tmp_path / "vocabulary.json"
    write_vocabulary(path, vocab)
    assert json.loads(path.read_text()) == vocab
    loaded = load_object_vocabulary(path)
    assert loaded.names == ["dog", "cat", "caf\u00e9"]
    assert loaded.counts["cat"] == 2 and loaded.tail == {"caf\u00e9"}
    assert loaded.num_captions == 7 and loaded.tail_fraction == 0.34
    empty = build_vocabulary(counts_of({}))
    write_vocabulary(path, empty)
    assert json.loads(path.read_text()) == empty


def test_loading_a_wrong_file_says_how_to_make_one(tmp_path):
    path = tmp_path / "v.json"
    path.write_text('{"dog": ["dog"]}')
    with pytest.raises(ValueError, match="alignclip objects stats"):
        load_object_vocabulary(path)


def test_table_row_and_plot(tmp_path):
    vocab = build_vocabulary(counts_of({f"o{i}": 1000 // (i + 1) for i in range(50)}, 2_901_344))
    row = table_row("CC3M", vocab)
    assert row.splitlines()[-1] == "| CC3M | 2,901,344 | 50 | 15 |"
    png = tmp_path / "plots" / "freq.png"
    plot_frequencies(vocab, png, title="CC3M")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000
    with pytest.raises(ValueError, match="no objects to plot"):
        plot_frequencies(build_vocabulary(counts_of({})), tmp_path / "x.png")
