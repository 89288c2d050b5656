"""Captions: noisy alt-text for training, clean exhaustive captions for retrieval.

An object mention is "[article or count] <colour word> <shape noun>", where the colour word and
shape noun come from the synonym tables in :mod:`classes`; its "<colour word> <shape noun>" part
is always one of the class's ``surface_forms``. Templates and distractors use no colour or shape
word, so matching the vocabulary against a lower-cased caption finds exactly the mentioned classes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alignclip_plugins.synthetic.classes import (
    CLASS_NAMES,
    COLOUR_WORDS,
    SHAPE_NOUNS,
    class_parts,
    surface_form,
)

NOISY_TEMPLATES: tuple[str, ...] = (
    "{objs}",
    "a picture of {objs}",
    "photo of {objs} on a grey background",
    "{objs} isolated on a textured background",
    "close-up of {objs}",
    "simple drawing with {objs}",
    "{objs}, flat illustration",
    "i made this: {objs}",
    "clip art of {objs}",
    "{objs} - stock image",
    "my kid drew {objs}",
    "abstract pattern featuring {objs}",
    "sticker pack with {objs}",
    "look at {objs}!!",
    "wallpaper: {objs}",
)
CLEAN_TEMPLATES: tuple[str, ...] = (
    "a photo of {objs}",
    "a picture of {objs}",
    "an image with {objs}",
    "{objs} on a plain background",
    "a drawing of {objs}",
)
# "{n}" is replaced by a random 4-digit number.
DISTRACTORS: tuple[str, ...] = (
    "#nofilter",
    "#art",
    "#minimal",
    "#design",
    "vintage",
    "my upload",
    "hd",
    "4k",
    "free download",
    "stock photo",
    "(edited)",
    "original",
    "lol",
    "new!",
    "best quality",
    "via my phone",
    "IMG_{n}",
    "DSC{n}",
    "\u2728",  # sparkles emoji
    "\U0001f4f7",  # camera emoji
)
NUMBER_WORDS: dict[int, tuple[str, ...]] = {
    2: ("two", "2", "a pair of"),
    3: ("three", "3"),
    4: ("four", "4"),
}

P_CANONICAL = 0.6  # chance a mention uses the canonical colour (and, separately, shape) word
P_CAPITALISE = 0.3
DISTRACTOR_COUNT_P = (0.45, 0.35, 0.2)  # P(0, 1, 2 distractors)


@dataclass(frozen=True)
class Caption:
    """A caption and what it mentions.

    ``objects``: mentioned class names, unique, in mention order.
    ``forms``: (class name, surface form) of every mention.
    ``shape_only``: class names mentioned by their shape alone ("a ring"), not in ``objects``.
    """

    text: str
    objects: tuple[str, ...]
    forms: tuple[tuple[str, str], ...]
    shape_only: tuple[str, ...] = ()


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _pick(options: Sequence[str], rng: np.random.Generator) -> str:
    return options[int(rng.integers(len(options)))]


def _word(options: Sequence, rng: np.random.Generator):
    """The canonical ``options[0]`` with probability P_CANONICAL, else a random synonym."""
    if len(options) == 1 or rng.random() < P_CANONICAL:
        return options[0]
    return options[1 + int(rng.integers(len(options) - 1))]


def _join(phrases: Sequence[str], rng: np.random.Generator, clean: bool) -> str:
    if len(phrases) == 1:
        return phrases[0]
    last = " and " if clean else _pick((" and ", " & ", ", ", " with "), rng)
    return ", ".join(phrases[:-1]) + last + phrases[-1]


def _groups(class_ids: Sequence[int]) -> list[tuple[int, int]]:
    """(class id, count) per distinct class, in order of first appearance."""
    return list(Counter(int(c) for c in class_ids).items())


def _mention(
    class_id: int, count: int, rng: np.random.Generator | None, colour_word: bool = True
) -> tuple[str, str]:
    """(phrase, surface form) of ``count`` objects; canonical words when ``rng`` is None.
    Without ``colour_word`` the phrase names the shape only ("two rings") and the surface form
    is the shape noun."""
    colour, shape = class_parts(class_id)
    if rng is None:
        colour_name, (singular, plural) = colour, SHAPE_NOUNS[shape][0]
    else:
        colour_name, (singular, plural) = (
            _word(COLOUR_WORDS[colour], rng),
            _word(SHAPE_NOUNS[shape], rng),
        )
    noun = singular if count == 1 else plural
    form = surface_form(colour_name, noun) if colour_word else noun
    if count == 1:
        lead = _article(form) if rng is None or rng.random() < 0.8 else _pick(("one", ""), rng)
    else:
        lead = (
            NUMBER_WORDS[count][0]
            if rng is None
            else _pick((*NUMBER_WORDS[count], "some", ""), rng)
        )
    return (f"{lead} {form}" if lead else form), form


def noisy_caption(
    class_ids: Sequence[int],
    rng: np.random.Generator,
    mention: float = 0.9,
    colour_mention: float = 1.0,
) -> Caption:
    """Alt-text-like caption of an image holding objects ``class_ids``.

    Mentions each class with probability ``mention`` (at least one: a random one when none
    was drawn), plural with a count when repeated, with synonyms, a random template,
    distractor words/hashtags and random capitalisation. Each mention names the colour with
    probability ``colour_mention``, else only the shape ("a ring"); a shape-only mention does
    not name its class, so it is not among ``objects``.
    """
    groups = _groups(class_ids)
    chosen = [g for g in groups if rng.random() < mention] or [
        groups[int(rng.integers(len(groups)))]
    ]
    chosen = [chosen[i] for i in rng.permutation(len(chosen))]
    # no draw at 1: a caller asking for every colour gets the captions it got before
    coloured = [colour_mention >= 1 or rng.random() < colour_mention for _ in chosen]
    mentions = [_mention(c, n, rng, k) for (c, n), k in zip(chosen, coloured)]
    text = _pick(NOISY_TEMPLATES, rng).format(
        objs=_join([m[0] for m in mentions], rng, clean=False)
    )
    count = int(rng.choice(len(DISTRACTOR_COUNT_P), p=DISTRACTOR_COUNT_P))
    for index in rng.choice(len(DISTRACTORS), size=count, replace=False):
        word = DISTRACTORS[int(index)].format(n=int(rng.integers(1000, 10000)))
        text = f"{word} {text}" if rng.random() < 0.3 else f"{text} {word}"
    if rng.random() < P_CAPITALISE:
        text = text[0].upper() + text[1:]
    named = [(c, m) for (c, _), m, k in zip(chosen, mentions, coloured) if k]
    return Caption(
        text=text,
        objects=tuple(CLASS_NAMES[c] for c, _ in named),
        forms=tuple((CLASS_NAMES[c], m[1]) for c, m in named),
        shape_only=tuple(CLASS_NAMES[c] for (c, _), k in zip(chosen, coloured) if not k),
    )


def clean_caption(class_ids: Sequence[int], rng: np.random.Generator) -> Caption:
    """Caption naming every object of the image with canonical words and exact counts."""
    groups = _groups(class_ids)
    mentions = [_mention(c, n, None) for c, n in groups]
    text = _pick(CLEAN_TEMPLATES, rng).format(objs=_join([m[0] for m in mentions], rng, clean=True))
    return Caption(
        text=text,
        objects=tuple(CLASS_NAMES[c] for c, _ in groups),
        forms=tuple((CLASS_NAMES[c], m[1]) for (c, _), m in zip(groups, mentions)),
    )
