"""The vocabulary matcher: formats, longest match, boundaries, plurals, once per caption."""

from __future__ import annotations

import json
import random

import pytest

from alignclip_plugins.objects.parsing import Caption
from alignclip_plugins.objects.vocabulary import (
    VocabParser,
    VocabularyMatcher,
    load_vocabulary,
)

SYNTHETIC = {
    "red circle": ["red circle", "red circles", "crimson circle", "crimson circles", "red dot"],
    "blue square": ["blue square", "blue squares", "azure box", "azure boxes"],
    "circle": ["circle", "circles"],
}


@pytest.fixture(params=["regex", "tokens"])
def matcher(request) -> VocabularyMatcher:
    return VocabularyMatcher(SYNTHETIC, strategy=request.param)


@pytest.mark.parametrize(
    "caption, expected",
    [
        ("A red circle beside a circle", ["red circle", "circle"]),  # longest match first
        ("two Crimson Circles, one azure box", ["red circle", "blue square"]),
        ("red circle and another red dot", ["red circle"]),  # each canonical once
        ("circles within circles", ["circle"]),
        ("a circlet in a redcircle", []),  # token boundaries
        ("red, circle", ["circle"]),  # punctuation breaks a multi-word form
        ("red-circle", ["red circle"]),  # hyphen separates tokens
        ("azure   boxes\nand a red\tcircle", ["blue square", "red circle"]),
        ("", []),
    ],
)
def test_matching_rules(matcher, caption, expected):
    assert matcher.match(caption) == expected


def test_order_is_first_appearance(matcher):
    assert matcher.match("an azure box, a circle, a red circle") == [
        "blue square",
        "circle",
        "red circle",
    ]


@pytest.mark.parametrize("strategy", ["regex", "tokens"])
def test_backtracks_when_a_longer_form_does_not_finish(strategy):
    forms = {"hot dog stand": ["hot dog stand"], "hot dog": ["hot dog"], "dog": ["dog"]}
    m = VocabularyMatcher(forms, strategy)
    assert m.match("a hot dog stand") == ["hot dog stand"]
    assert m.match("a hot dog standing") == ["hot dog"]
    assert m.match("hot dogs") == []  # no generated plurals for explicit JSON forms


def test_text_vocabulary_generates_plurals(tmp_path):
    path = tmp_path / "vocab.txt"
    path.write_text("# objects\nperson\nmouse\ntraffic light\n\nbox  # comment\nglass\nglasses\n")
    forms = load_vocabulary(path)
    assert list(forms) == ["person", "mouse", "traffic light", "box", "glass", "glasses"]
    m = VocabularyMatcher(forms)
    assert m.match("People and MICE near traffic lights; boxes") == [
        "person",
        "mouse",
        "traffic light",
        "box",
    ]
    # an entry's own form beats another entry's generated plural
    assert m.match("a pair of glasses") == ["glasses"]


def test_json_list_and_stats_file_vocabularies(tmp_path):
    listed = tmp_path / "list.json"
    listed.write_text(json.dumps(["Hot Dog", "cat"]))
    assert VocabularyMatcher.from_file(listed).match("two hot dogs and cats") == ["hot dog", "cat"]
    stats = tmp_path / "vocabulary.json"
    stats.write_text(json.dumps({"objects": [{"name": "dog", "count": 3, "tail": False}]}))
    assert VocabularyMatcher.from_file(stats).match("Dogs!") == ["dog"]


def test_synthetic_format_is_used_as_given(tmp_path):
    path = tmp_path / "vocabulary.json"
    path.write_text(json.dumps(SYNTHETIC))
    forms = load_vocabulary(path)
    assert forms["red circle"][0] == "red circle" and "red dot" in forms["red circle"]


@pytest.mark.parametrize(
    "content, message",
    [
        ('{"red circle": "red circle"}', "must be a list of surface forms"),
        ("{not json", "not valid JSON"),
        ("42", "expected a JSON object or list"),
        ("", "is empty"),
        ("[]", "holds no entries"),
        ('{"objects": [{"count": 1}]}', "needs a 'name'"),
    ],
)
def test_bad_vocabulary_files_are_named(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message) as info:
        load_vocabulary(path)
    assert "bad.json" in str(info.value)


def test_form_claimed_by_two_objects_is_an_error():
    with pytest.raises(ValueError, match="'red dot' belongs to both"):
        VocabularyMatcher({"red circle": ["red dot"], "red square": ["Red  Dot"]})


def test_vocab_parser_batch_and_identity(tmp_path):
    path = tmp_path / "v.txt"
    path.write_text("dog\ncat\n")
    parser = VocabParser(path)
    batch = [
        Caption("x", "1", "a dog"),
        Caption("x", "2", "no pets"),
        Caption("x", "3", "cats, dogs"),
    ]
    assert parser.parse_batch(batch) == [["dog"], [], ["cat", "dog"]]
    identity = parser.identity()
    path.write_text("dog\ncat\nbird\n")
    assert VocabParser(path).identity() != identity


def test_strategies_agree_on_random_captions():
    rng = random.Random(0)
    words = ["red", "circle", "circles", "crimson", "azure", "box", "boxes", "dot", "hot", "dog"]
    forms = {
        "red circle": ["red circle", "red circles", "crimson circle", "red dot"],
        "blue square": ["azure box", "azure boxes"],
        "circle": ["circle", "circles"],
        "hot dog": ["hot dog", "hot dogs"],
        "hot dog stand": ["hot dog stand"],
        "dog": ["dog"],
    }
    glue = [" ", "  ", "-", ", ", ". ", "'s ", "_", "\n", "x"]
    regex = VocabularyMatcher(forms, "regex")
    tokens = VocabularyMatcher(forms, "tokens")
    assert regex.strategy == "regex" and tokens.strategy == "tokens"
    for _ in range(3000):
        parts = [rng.choice(words + ["stand", "Red", "DOG"]) for _ in range(rng.randint(0, 8))]
        caption = "".join(p + rng.choice(glue) for p in parts)
        assert regex.match(caption) == tokens.match(caption), caption


def test_auto_strategy_depends_on_size(monkeypatch):
    from alignclip_plugins.objects import vocabulary

    assert VocabularyMatcher({"a": ["a"]}).strategy == "regex"
    monkeypatch.setattr(vocabulary, "REGEX_MAX_FORMS", 1)
    assert VocabularyMatcher({"a": ["a"], "b": ["b"]}).strategy == "tokens"
    with pytest.raises(ValueError, match="unknown matching strategy"):
        VocabularyMatcher({"a": ["a"]}, "fast")
