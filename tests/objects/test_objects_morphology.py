"""Plural generation (vocab entries) and singularisation (LLM answers)."""

from __future__ import annotations

import pytest

from alignclip_plugins.objects.morphology import plural_forms, pluralize, singularize
from alignclip_plugins.objects.normalize import clean_text, normalize_object

PAIRS = [
    ("dog", "dogs"),
    ("box", "boxes"),
    ("bench", "benches"),
    ("dish", "dishes"),
    ("glass", "glasses"),
    ("city", "cities"),
    ("toy", "toys"),
    ("potato", "potatoes"),
    ("photo", "photos"),
    ("knife", "knives"),
    ("leaf", "leaves"),
    ("person", "people"),
    ("mouse", "mice"),
    ("child", "children"),
    ("man", "men"),
    ("woman", "women"),
    ("tooth", "teeth"),
    ("bus", "buses"),
    ("quiz", "quizzes"),
    ("sheep", "sheep"),
    ("fish", "fish"),
    ("traffic light", "traffic lights"),
    ("fire truck", "fire trucks"),
]


@pytest.mark.parametrize("singular, plural", PAIRS)
def test_pluralize(singular, plural):
    assert pluralize(singular) == plural


@pytest.mark.parametrize(
    "singular, plural",
    [p for p in PAIRS if p[0] not in ("glass", "fish", "sheep")] + [("sheep", "sheep")],
)
def test_singularize_inverts_pluralize(singular, plural):
    assert singularize(plural) == singular


@pytest.mark.parametrize(
    "plural, singular",
    [
        ("houses", "house"),
        ("horses", "horse"),
        ("shoes", "shoe"),
        ("toes", "toe"),
        ("tomatoes", "tomato"),
        ("movies", "movie"),
        ("pies", "pie"),
        ("flies", "fly"),
        ("headaches", "headache"),
        ("gloves", "glove"),
        ("sizes", "size"),
        ("dresses", "dress"),
        ("tennis", "tennis"),
        ("jeans", "jeans"),
        ("species", "species"),
        ("cactus", "cactus"),
        ("hot dogs", "hot dog"),
    ],
)
def test_singularize_special_cases(plural, singular):
    assert singularize(plural) == singular


def test_ambiguous_endings_give_every_candidate():
    assert set(plural_forms("mango")) == {"mangos", "mangoes"}
    assert set(plural_forms("roof")) == {"roofs", "rooves"}


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("A Dog", "dog"),
        ("two red Balls.", "red ball"),
        ("the children's toys", "children toy"),
        ("stock photo", None),
        ("city view", "city"),
        ("T-shirts", "t-shirt"),
        ("3", None),
        ("a", None),
        ("  Traffic   lights ", "traffic light"),
    ],
)
def test_normalize_object(raw, expected):
    assert normalize_object(raw) == expected


def test_normalize_without_lemmatizing_keeps_the_head():
    assert normalize_object("glasses", lemmatize=False) == "glasses"
    assert normalize_object("buses", lemmatize=False) == "buses"


def test_clean_text():
    assert clean_text("Hello, World's -best- t-shirt!") == "hello world best t-shirt"
