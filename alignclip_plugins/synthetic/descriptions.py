"""Visual descriptions: three plain-language appearance descriptions per class.

Written from the known shape and colour of each class (what an LLM would be asked to produce
for a real dataset). Each class combines its shape's three looks with its colour's three tints
through a template chosen by class, so wording differs across classes.
"""

from __future__ import annotations

from alignclip_plugins.synthetic.classes import (
    CLASS_NAMES,
    COLOURS,
    SHAPES,
    class_index,
    class_parts,
)

SHAPE_LOOKS: dict[str, tuple[str, str, str]] = {
    "circle": (
        "a round, flat shape with one smooth curved edge and no corners",
        "a solid disc that looks the same from every side",
        "a filled round shape like a coin seen from above",
    ),
    "square": (
        "a flat shape with four equal straight sides and four right-angled corners",
        "a solid block whose width and height are the same",
        "a filled box-like shape with sharp corners and straight edges",
    ),
    "triangle": (
        "a flat shape with three straight sides and a pointed top",
        "a solid wedge that is wide at the bottom and narrows to a point",
        "a three-cornered shape standing on a flat base",
    ),
    "star": (
        "a shape with five sharp points spreading out from the centre",
        "a solid five-pointed figure with narrow notches between its points",
        "a pointy, spiky shape like a star drawn on a sticker",
    ),
    "cross": (
        "a plus-shaped figure made of two thick bars crossing in the middle",
        "a solid figure with four equal arms pointing up, down, left and right",
        "a shape like a plus sign with square ends on each arm",
    ),
    "ring": (
        "a thick round outline with an empty hole in the middle",
        "a hollow circle, like a donut or a hoop, with the background showing through its centre",
        "a round band surrounding a see-through centre",
    ),
    "diamond": (
        "a four-sided shape standing on one of its corners",
        "a solid rhombus with pointed top, bottom, left and right corners",
        "a square turned onto its tip, narrow at the top and the bottom",
    ),
    "heart": (
        "a shape with two rounded bumps on top that meet in a point at the bottom",
        "a solid love-heart symbol, wide at the top and pointed at the bottom",
        "a curved, symmetric shape like the heart on a playing card",
    ),
}
COLOUR_TINTS: dict[str, tuple[str, str, str]] = {
    "red": (
        "filled with a bright red colour",
        "coloured a strong red, like a ripe tomato",
        "in a vivid scarlet shade",
    ),
    "green": (
        "filled with a fresh green colour",
        "coloured like grass or a green leaf",
        "in a clear emerald shade",
    ),
    "blue": (
        "filled with a deep blue colour",
        "coloured a rich cobalt blue, like ink",
        "in a strong shade of blue",
    ),
    "yellow": (
        "filled with a warm yellow colour",
        "coloured bright yellow, like a lemon",
        "in a sunny golden shade",
    ),
    "purple": (
        "filled with a purple colour",
        "coloured violet, a mix of red and blue",
        "in a rich plum shade",
    ),
    "orange": (
        "filled with a bright orange colour",
        "coloured like the peel of an orange",
        "in a warm amber shade",
    ),
}
TEMPLATES: tuple[str, ...] = (
    "{a_name}: {look}, {tint}",
    "{a_name} is {look}, {tint}",
    "{a_name} resembles {look}, {tint}",
    "picture {a_name} as {look}, {tint}",
    "{a_name} appears as {look}, {tint}",
)


def describe(name: str) -> list[str]:
    """Three distinct appearance descriptions of class ``name``."""
    colour, shape = class_parts(class_index(name))
    c, s = COLOURS.index(colour), SHAPES.index(shape)
    a_name = f"{'an' if name[0] in 'aeiou' else 'a'} {name}"
    return [
        TEMPLATES[(i + c + s) % len(TEMPLATES)].format(
            a_name=a_name, look=SHAPE_LOOKS[shape][i], tint=COLOUR_TINTS[colour][(i + s) % 3]
        )
        for i in range(3)
    ]


def visual_descriptions() -> dict[str, list[str]]:
    """{class name: three descriptions}, in class-index order (``descriptions.json``)."""
    return {name: describe(name) for name in CLASS_NAMES}
