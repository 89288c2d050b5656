"""The one normal form of an object name, shared by every parser backend.

Lower case; letters, digits, inner hyphens and single spaces only; no leading article,
quantifier or number ("a", "two", "some"); the head (last) word singular (lemmatised by
stanza for ``pos``, by :func:`~alignclip_plugins.objects.morphology.singularize`
otherwise); trailing non-visual nouns ("photo", "image", "view", ...) removed, so
"stock photo" vanishes and "city view" becomes "city". An object that keeps no letter is
dropped.
"""

from __future__ import annotations

import re
from collections.abc import Collection

from alignclip_plugins.objects.morphology import singularize

# Nouns that name the picture, a position or an abstraction rather than something visible.
STOP_NOUNS: frozenset[str] = frozenset(
    "photo photograph photography image picture pic snapshot shot closeup close-up view "
    "illustration stock vector clipart footage video clip background design concept idea "
    "style thing something someone somebody anything everything nothing lot kind type sort "
    "part side front bottom middle center centre way time moment day year today example "
    "version".split()
)

# Leading words that are not part of an object's name.
DETERMINERS: frozenset[str] = frozenset(
    "a an the this that these those some any several many few various other another each "
    "every its his her their our my your one two three four five six seven eight nine ten "
    "eleven twelve dozen dozens hundreds thousands multiple numerous".split()
)

_APOSTROPHE_S = re.compile(r"['\u2019]s\b")
_NOT_WORD = re.compile(r"[^\w\s-]|_")
_SPACES = re.compile(r"\s+")
_HAS_LETTER = re.compile(r"[^\W\d_]")


def clean_text(text: str) -> str:
    """Lower case; possessive 's and punctuation dropped; words split on spaces and on
    hyphens at a word's edge ("t-shirt" stays whole)."""
    text = _APOSTROPHE_S.sub("", text.lower())
    text = _NOT_WORD.sub(" ", text)
    words = (w.strip("-") for w in _SPACES.split(text))
    return " ".join(w for w in words if w)


def normalize_object(
    phrase: str,
    lemmatize: bool = True,
    stop_nouns: Collection[str] = STOP_NOUNS,
) -> str | None:
    """The normal form of one object phrase, or ``None`` if nothing visual is left.

    ``lemmatize=False`` when the head word is already a lemma (stanza's).
    """
    words = clean_text(phrase).split()
    while words and (words[0] in DETERMINERS or words[0].isdigit()):
        words.pop(0)
    if not words:
        return None
    if lemmatize:
        words[-1] = singularize(words[-1])
    while words and words[-1] in stop_nouns:
        words.pop()
    if not words:
        return None
    name = " ".join(words)
    if len(name) < 2 or not _HAS_LETTER.search(name):
        return None
    return name


def unique(objects: list[str | None]) -> list[str]:
    """The distinct non-empty objects, in order of first appearance."""
    seen: dict[str, None] = {}
    for obj in objects:
        if obj:
            seen.setdefault(obj, None)
    return list(seen)
