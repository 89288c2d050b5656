"""English noun number: plural forms of vocabulary entries, singular forms of LLM answers.

Rule-based (no model): irregular and invariant tables first, then suffix rules. For a
multi-word entry only the last word (the head) changes: "traffic light" -> "traffic
lights". :func:`plural_forms` may return several candidates ("mangos", "mangoes") because
they are only ever used for matching text.
"""

from __future__ import annotations

IRREGULAR_PLURALS: dict[str, str] = {
    "person": "people",
    "man": "men",
    "woman": "women",
    "child": "children",
    "mouse": "mice",
    "louse": "lice",
    "goose": "geese",
    "foot": "feet",
    "tooth": "teeth",
    "ox": "oxen",
    "cactus": "cacti",
    "fungus": "fungi",
    "octopus": "octopuses",
    "bus": "buses",
    "gas": "gases",
    "lens": "lenses",
    "atlas": "atlases",
    "canvas": "canvases",
    "iris": "irises",
    "quiz": "quizzes",
    "leaf": "leaves",
    "knife": "knives",
    "wife": "wives",
    "life": "lives",
    "wolf": "wolves",
    "shelf": "shelves",
    "loaf": "loaves",
    "half": "halves",
    "calf": "calves",
    "thief": "thieves",
    "scarf": "scarves",
    "hoof": "hooves",
    "elf": "elves",
    "sheaf": "sheaves",
    "analysis": "analyses",
    "axe": "axes",
    "crisis": "crises",
    "oasis": "oases",
    "criterion": "criteria",
    "phenomenon": "phenomena",
}
IRREGULAR_SINGULARS: dict[str, str] = {p: s for s, p in IRREGULAR_PLURALS.items()}

# Same form in both numbers, or used in the plural only ("a pair of jeans").
INVARIANT: frozenset[str] = frozenset(
    "sheep deer fish series species aircraft spacecraft moose bison salmon trout swine "
    "offspring news means headquarters jeans pants shorts trousers scissors clothes "
    "pajamas pyjamas binoculars glasses sunglasses eyeglasses tongs pliers goggles "
    "leggings overalls tights chess tennis physics mathematics gymnastics athletics "
    "electronics police cattle".split()
)

# Singulars ending in -ie (the default for -ies is -y) and in -o taking plain -s.
IE_SINGULARS: frozenset[str] = frozenset(
    "movie cookie pie tie lie die brownie hippie zombie selfie calorie rookie smoothie "
    "goalie collie bookie prairie hoodie auntie sweetie necktie bowtie genie pixie "
    "magpie birdie budgie veggie".split()
)
OES_PLURALS: frozenset[str] = frozenset(
    "potato tomato hero echo veto torpedo volcano mosquito mango domino".split()
)
# -oes plurals whose singular ends in -oe.
OE_SINGULARS: frozenset[str] = frozenset(
    "shoe toe canoe oboe hoe foe floe doe roe throe tiptoe horseshoe snowshoe".split()
)
# -che singulars: "headaches" -> "headache", not "headach".
CHE_SINGULARS: frozenset[str] = frozenset(
    "moustache mustache avalanche niche quiche cache headache toothache creche psyche "
    "cliche microfiche".split()
)
# Singulars that end in -s: left alone by singularize.
S_SINGULARS: frozenset[str] = frozenset(
    "bus gas lens atlas canvas iris christmas texas bias alias chaos cosmos circus "
    "walrus virus campus bonus octopus cactus hippopotamus asparagus hummus citrus "
    "platypus abacus census corpus genus lotus status apparatus fungus".split()
)

_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")
_VOWELS = "aeiou"


def _plural_word(word: str) -> list[str]:
    if word in INVARIANT:
        return [word]
    if word in IRREGULAR_PLURALS:
        return [IRREGULAR_PLURALS[word]]
    if word.endswith("y") and len(word) > 1 and word[-2] not in _VOWELS:
        return [word[:-1] + "ies"]
    if word.endswith(_SIBILANT_ENDINGS):
        return [word + "es"]
    if word.endswith("o") and len(word) > 1 and word[-2] not in _VOWELS:
        return [word + "es", word + "s"] if word in OES_PLURALS else [word + "s", word + "es"]
    if word.endswith("fe"):
        return [word + "s", word[:-2] + "ves"]
    if word.endswith("f") and not word.endswith("ff"):
        return [word + "s", word[:-1] + "ves"]
    return [word + "s"]


def plural_forms(phrase: str) -> list[str]:
    """Plural candidates of a (possibly multi-word) noun phrase, most likely first."""
    words = phrase.split()
    if not words:
        return []
    head, rest = words[-1], words[:-1]
    return [" ".join([*rest, form]) for form in _plural_word(head)]


def pluralize(phrase: str) -> str:
    """The most likely plural of ``phrase``: ``pluralize("person") == "people"``."""
    forms = plural_forms(phrase)
    return forms[0] if forms else phrase


def _singular_word(word: str) -> str:
    if word in INVARIANT or word in S_SINGULARS:
        return word
    if word in IRREGULAR_SINGULARS:
        return IRREGULAR_SINGULARS[word]
    if len(word) <= 3:
        return word
    if word.endswith("ies"):
        stem = word[:-3]
        return stem + "ie" if (len(word) <= 4 or stem + "ie" in IE_SINGULARS) else stem + "y"
    if word.endswith("oes"):
        if word[:-1] in OE_SINGULARS or word.endswith("shoes"):
            return word[:-1]
        return word[:-2]
    if word.endswith("sses") or word.endswith("shes") or word.endswith("xes"):
        return word[:-2]
    if word.endswith("ches"):
        return word[:-1] if word[:-1] in CHE_SINGULARS else word[:-2]
    if word.endswith("zzes"):
        return word[:-2]
    if word.endswith(("ss", "us", "is", "ous")):
        return word
    if word.endswith("s") and not word.endswith("'s"):
        return word[:-1]
    return word


def singularize(phrase: str) -> str:
    """Singular of a noun phrase (head word only): "traffic lights" -> "traffic light"."""
    words = phrase.split()
    if not words:
        return phrase
    return " ".join([*words[:-1], _singular_word(words[-1])])
