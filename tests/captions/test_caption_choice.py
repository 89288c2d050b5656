"""One caption per sample per epoch: the lines of a ``txt``, the keyed-hash draw, the stage."""

import logging
from collections import Counter

import pytest

from alignclip_plugins.captions.choice import (
    CaptionChoiceStage,
    caption_lines,
    choose,
)
from alignclip_plugins.keyed_draws import draw_uniforms

FIVE = "A dog runs .\n  a brown dog on grass\n\n\ta dog\r\nthe dog plays .\nDog .\n"


class Epoch:  # upstream's SharedEpoch, as the stages see it
    def __init__(self, value: int) -> None:
        self.value = value

    def get_value(self) -> int:
        return self.value


def samples(texts: dict[str, str]) -> list[dict]:
    return [{"__key__": k, "__url__": "/d/s.tar", "text": t} for k, t in texts.items()]


def test_caption_lines_are_the_non_empty_stripped_lines():
    assert caption_lines(FIVE) == [
        "A dog runs .", "a brown dog on grass", "a dog", "the dog plays .", "Dog .",
    ]  # fmt: skip
    assert caption_lines(b"one caption") == ["one caption"]
    assert caption_lines(" \n\n \t\n") == []


def test_choice_is_a_keyed_hash_of_seed_epoch_and_key():
    (u,) = draw_uniforms(7, 3, "caption\x1fk1", count=1)
    assert choose("random", 5, seed=7, epoch=3, key="k1") == int(u * 5)
    again = [choose("random", 5, seed=7, epoch=3, key="k1") for _ in range(3)]
    assert len(set(again)) == 1
    keys = [f"k{i}" for i in range(2000)]
    by_epoch = [[choose("random", 5, seed=0, epoch=e, key=k) for k in keys] for e in range(3)]
    assert by_epoch[0] != by_epoch[1] != by_epoch[2]  # a new caption every epoch
    counts = Counter(by_epoch[0])
    assert set(counts) == {0, 1, 2, 3, 4} and min(counts.values()) > 340  # ~400 each
    other_seed = [choose("random", 5, seed=1, epoch=0, key=k) for k in keys]
    assert other_seed != by_epoch[0]
    # independent of the text-domain draw that hashes the same (seed, epoch, key): with the
    # same number, caption 0 (u < 0.2) would always come with u < 0.5 (P = 0.2, not 0.1)
    domain = [draw_uniforms(0, 0, k)[0] < 0.5 for k in keys]
    joint = sum(d and c == 0 for d, c in zip(domain, by_epoch[0])) / len(keys)
    assert 0.07 < joint < 0.13
    assert choose("first", 5, seed=0, epoch=9, key="k") == 0
    assert choose("all", 5, seed=0, epoch=9, key="k") is None
    assert choose("random", 1, seed=0, epoch=9, key="k") == 0
    with pytest.raises(ValueError, match="choice must be one of"):
        choose("second", 5, seed=0, epoch=0, key="k")


def test_stage_rewrites_text_skips_empty_txt_and_logs_counts(caplog):
    stage = CaptionChoiceStage("random", seed=3, epoch=Epoch(2))
    stream = samples({"a": FIVE, "b": "one only\n", "c": " \n \n", "d": FIVE})
    with caplog.at_level(logging.INFO, logger="alignclip_plugins.captions.choice"):
        out = list(stage(iter(stream)))
    assert [s["__key__"] for s in out] == ["a", "b", "d"]
    lines = caption_lines(FIVE)
    for s in (out[0], out[2]):
        index = choose("random", 5, seed=3, epoch=2, key=s["__key__"])
        assert s["caption_index"] == index and s["caption_count"] == 5
        assert s["text"] == lines[index]
    assert out[1]["text"] == "one only" and out[1]["caption_index"] == 0
    record = caplog.records[-1]
    assert record.levelno == logging.WARNING
    assert (
        "epoch 2 (choice random): 3 samples: 1 with 1 caption, 2 with 5 captions; 1 skipped: "
        "no non-empty caption line ('c' of /d/s.tar)" in record.getMessage()
    )


def test_all_keeps_the_member_as_upstream_and_passes_count_epochs():
    stage = CaptionChoiceStage("all", seed=0)
    (first,) = stage(iter(samples({"a": FIVE})))
    assert first["text"] == FIVE and first["caption_index"] is None
    assert first["caption_count"] == 5
    random_stage = CaptionChoiceStage("random", seed=0)  # no shared epoch: passes count
    texts = []
    for _ in range(4):
        (s,) = random_stage(iter(samples({"k": FIVE})))
        texts.append(s["caption_index"])
    assert texts == [choose("random", 5, seed=0, epoch=e, key="k") for e in range(4)]
    with pytest.raises(ValueError, match="choice must be one of"):
        CaptionChoiceStage("any")
