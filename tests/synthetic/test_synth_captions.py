"""Captions: mentions, noise, and coverage of every emitted surface form by the vocabulary."""

import re

import numpy as np
import pytest

from alignclip_plugins.synthetic.captions import (
    DISTRACTORS,
    NOISY_TEMPLATES,
    clean_caption,
    noisy_caption,
)
from alignclip_plugins.synthetic.classes import CLASS_NAMES, SHAPE_NOUNS, vocabulary

VOCAB = vocabulary()
FORM_TO_CLASS = {form: name for name, forms in VOCAB.items() for form in forms}
# Longest forms first, so "red love heart" wins over shorter overlapping alternatives.
FORM_RE = re.compile(
    r"\b(" + "|".join(re.escape(f) for f in sorted(FORM_TO_CLASS, key=len, reverse=True)) + r")\b"
)


def parse(text: str) -> set[str]:
    """Classes found in a caption by plain vocabulary matching (what an offline parser does)."""
    return {FORM_TO_CLASS[m] for m in FORM_RE.findall(text.lower())}


def random_objects(rng: np.random.Generator) -> list[int]:
    ids = rng.integers(0, 48, size=int(rng.integers(1, 5))).tolist()
    if rng.random() < 0.3:  # force repeats, so plurals occur often
        ids = ids[:1] * len(ids)
    return ids


@pytest.fixture(scope="module")
def noisy():
    rng = np.random.default_rng(0)
    return [(ids, noisy_caption(ids, rng)) for ids in (random_objects(rng) for _ in range(3000))]


def test_enough_templates_and_distractors():
    assert len(NOISY_TEMPLATES) >= 10 and len(set(NOISY_TEMPLATES)) == len(NOISY_TEMPLATES)
    assert {"#nofilter", "vintage", "my upload"} <= set(DISTRACTORS)


def test_vocabulary_covers_every_emitted_surface_form(noisy):
    for _, caption in noisy:
        for name, form in caption.forms:
            assert form in VOCAB[name], (form, name)
            assert form in caption.text.lower()
    emitted = {form for _, c in noisy for _, form in c.forms}
    assert len(emitted) > 300  # synonyms and plurals really are used


def test_parsing_with_the_vocabulary_finds_exactly_the_mentioned_objects(noisy):
    for _, caption in noisy:
        assert parse(caption.text) == set(caption.objects), caption.text


def test_noisy_captions_mention_some_present_objects(noisy):
    partial = 0
    for ids, caption in noisy:
        present = {CLASS_NAMES[i] for i in ids}
        assert caption.objects and set(caption.objects) <= present
        assert len(caption.objects) == len(set(caption.objects))
        partial += set(caption.objects) != present
    assert 0.1 < partial / len(noisy) < 0.6


def test_noise_features_occur(noisy):
    texts = [c.text for _, c in noisy]
    assert any(re.search(r"\b(two|three|four|2|3|4|a pair of) \w+ \w+s\b", t) for t in texts)
    assert sum(any(d.split("{")[0] in t for d in DISTRACTORS) for t in texts) > len(texts) // 3
    assert any(t[0].isupper() for t in texts) and any(t[0].islower() for t in texts)
    lowered = [t.lower() for t in texts]
    fixed_parts = [
        [p for p in tpl.split("{objs}") if p] for tpl in NOISY_TEMPLATES if tpl != "{objs}"
    ]
    used = sum(any(all(p in t for p in parts) for t in lowered) for parts in fixed_parts)
    assert used >= 10


def test_plural_mentions_count_repeated_objects():
    rng = np.random.default_rng(1)
    for _ in range(200):
        caption = clean_caption([0, 0, 0], rng)
        assert "three red circles" in caption.text and caption.forms == (
            ("red circle", "red circles"),
        )


def test_clean_captions_name_every_object_canonically():
    rng = np.random.default_rng(2)
    for _ in range(1000):
        ids = random_objects(rng)
        caption = clean_caption(ids, rng)
        assert set(caption.objects) == {CLASS_NAMES[i] for i in ids}
        assert parse(caption.text) == set(caption.objects)
        for name, form in caption.forms:
            assert form in VOCAB[name][:2]


def test_captions_are_deterministic_per_generator_state():
    a = noisy_caption([1, 2, 2], np.random.default_rng(7))
    assert a == noisy_caption([1, 2, 2], np.random.default_rng(7))


def test_colour_mention_names_some_objects_by_shape_alone():
    """A shape-only mention ("two rings") says the shape noun but no colour word: the vocabulary
    parser does not find its class, the caption records it in ``shape_only``."""
    rng = np.random.default_rng(3)
    shape_only = mentions = 0
    for ids in (random_objects(rng) for _ in range(2000)):
        caption = noisy_caption(ids, rng, mention=1.0, colour_mention=0.5)
        present = {CLASS_NAMES[i] for i in ids}
        assert parse(caption.text) == set(caption.objects)
        assert not set(caption.objects) & set(caption.shape_only)
        assert set(caption.objects) | set(caption.shape_only) == present  # mention=1: all said
        for name in caption.shape_only:
            shape = name.split(" ", 1)[1]
            assert any(
                re.search(rf"\b{n}\b", caption.text.lower())
                for pair in SHAPE_NOUNS[shape]
                for n in pair
            ), (name, caption.text)
        shape_only += len(caption.shape_only)
        mentions += len(caption.objects) + len(caption.shape_only)
    assert shape_only / mentions == pytest.approx(0.5, abs=0.03)


def test_every_mention_names_its_colour_by_default(noisy):
    assert all(not c.shape_only for _, c in noisy)
