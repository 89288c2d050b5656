"""The 48 object classes (8 shapes x 6 colours): synonyms, surface forms and Zipf frequencies.

Class index ``i`` is ``COLOURS[i // 8]`` + ``SHAPES[i % 8]``; its name is "<colour> <shape>",
e.g. index 0 = "red circle". These indices are the zero-shot labels and the line numbers of
``classnames.txt``.
"""

from __future__ import annotations

import math

import numpy as np

SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "ring",
    "diamond",
    "heart",
)
COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "purple", "orange")

# Synonym tables used by the caption generator; the first entry is the canonical word.
# Every word is unique across the tables, so a "<colour word> <shape noun>" surface form
# names exactly one class. Shape nouns are (singular, plural) pairs.
COLOUR_WORDS: dict[str, tuple[str, ...]] = {
    "red": ("red", "crimson", "scarlet"),
    "green": ("green", "emerald", "lime"),
    "blue": ("blue", "azure", "cobalt"),
    "yellow": ("yellow", "golden", "lemon"),
    "purple": ("purple", "violet", "plum"),
    "orange": ("orange", "tangerine", "amber"),
}
SHAPE_NOUNS: dict[str, tuple[tuple[str, str], ...]] = {
    "circle": (("circle", "circles"), ("disc", "discs"), ("dot", "dots")),
    "square": (("square", "squares"), ("box", "boxes"), ("block", "blocks")),
    "triangle": (("triangle", "triangles"), ("wedge", "wedges")),
    "star": (("star", "stars"), ("starburst", "starbursts")),
    "cross": (("cross", "crosses"), ("plus sign", "plus signs")),
    "ring": (("ring", "rings"), ("hoop", "hoops"), ("donut", "donuts")),
    "diamond": (("diamond", "diamonds"), ("rhombus", "rhombuses"), ("lozenge", "lozenges")),
    "heart": (("heart", "hearts"), ("love heart", "love hearts")),
}

# Base fill colour of each colour class (RGB 0-255). Every colour has a channel <= 60, so
# none is confusable with the light (>= 150 per channel) background.
RGB: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 30),
    "purple": (140, 50, 180),
    "orange": (245, 130, 20),
}

CLASS_NAMES: tuple[str, ...] = tuple(f"{c} {s}" for c in COLOURS for s in SHAPES)
NUM_CLASSES = len(CLASS_NAMES)
_INDEX = {name: i for i, name in enumerate(CLASS_NAMES)}

_RANK_STREAM = 0x52414E4B  # seed-sequence stream id of the class -> rank shuffle


def class_index(name: str) -> int:
    """Index of a class name such as "red circle"."""
    try:
        return _INDEX[name]
    except KeyError:
        raise KeyError(
            f"unknown class {name!r}; classes are '<colour> <shape>' with colours "
            f"{COLOURS} and shapes {SHAPES}"
        ) from None


def class_parts(index: int) -> tuple[str, str]:
    """(colour, shape) of class ``index``."""
    return COLOURS[index // len(SHAPES)], SHAPES[index % len(SHAPES)]


def surface_form(colour_word: str, shape_noun: str) -> str:
    """A caption mention without article or count, e.g. "crimson discs"."""
    return f"{colour_word} {shape_noun}"


def surface_forms(name: str) -> list[str]:
    """All surface forms of a class that captions can contain, canonical singular and plural first."""
    colour, shape = class_parts(class_index(name))
    forms = []
    for word in COLOUR_WORDS[colour]:
        for singular, plural in SHAPE_NOUNS[shape]:
            forms += [surface_form(word, singular), surface_form(word, plural)]
    return forms


def vocabulary() -> dict[str, list[str]]:
    """{class name: its surface forms}, in class-index order (the ``vocabulary.json`` content)."""
    return {name: surface_forms(name) for name in CLASS_NAMES}


def class_ranks(seed: int) -> np.ndarray:
    """(48,) int: frequency rank of each class, 0 = most frequent.

    A seeded shuffle, so the head and the tail mix colours and shapes.
    """
    rng = np.random.default_rng(np.random.SeedSequence([_RANK_STREAM, seed]))
    ranks = np.empty(NUM_CLASSES, dtype=np.int64)
    ranks[rng.permutation(NUM_CLASSES)] = np.arange(NUM_CLASSES)
    return ranks


def zipf_probabilities(ranks: np.ndarray, exponent: float) -> np.ndarray:
    """(48,) float64 summing to 1: p[c] proportional to (rank[c] + 1) ** -exponent."""
    weights = (np.asarray(ranks, dtype=np.float64) + 1.0) ** -float(exponent)
    return weights / weights.sum()


def num_tail(fraction: float) -> int:
    """How many classes a tail fraction covers (rounded half up)."""
    return min(NUM_CLASSES, max(0, math.floor(fraction * NUM_CLASSES + 0.5)))


def tail_mask(counts: np.ndarray, ranks: np.ndarray, fraction: float) -> np.ndarray:
    """(48,) bool: the ``num_tail(fraction)`` least frequent classes by ``counts``.

    Ties in ``counts`` go to the class with the higher (rarer) Zipf rank.
    """
    order = sorted(range(NUM_CLASSES), key=lambda c: (int(counts[c]), -int(ranks[c])))
    mask = np.zeros(NUM_CLASSES, dtype=bool)
    mask[order[: num_tail(fraction)]] = True
    return mask
