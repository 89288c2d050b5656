"""The ``vocab`` parser: match captions against a fixed object vocabulary, fully offline.

Vocabulary files (:func:`load_vocabulary`):
- JSON object ``{"red circle": ["red circle", "red circles", "crimson circle", ...]}``
  (canonical name -> surface forms, as the embedded synthetic dataset writes it): the
  forms are used as given, plus the canonical name itself;
- JSON ``{"objects": [{"name": ...}, ...]}`` (``alignclip objects stats`` output), a JSON
  list of names, or a text file with one name a line (``#`` comments and blank lines
  skipped): each name plus its generated plurals ("person" -> "people"), a plural
  being dropped where another entry already names that form.

Matching (:class:`VocabularyMatcher`): lower case, on word tokens (runs of letters and
digits; punctuation, hyphens and apostrophes separate tokens, so "t-shirt" matches the
entry "t shirt" and vice versa; other punctuation breaks a multi-word form), left to right, the longest entry starting at a token
first ("red circle" wins over "circle"), each canonical object once per caption.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from alignclip_plugins.objects.morphology import plural_forms
from alignclip_plugins.objects.parsing import Caption, ObjectParser

_TOKEN = re.compile(r"[^\W_]+")


def tokenize(text: str) -> list[str]:
    """The lower-cased word tokens matching works on."""
    return _TOKEN.findall(text.lower())


def _names_to_forms(names: Iterable[str], path: Path) -> dict[str, list[str]]:
    forms: dict[str, list[str]] = {}
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"{path}: vocabulary entries must be strings, got {name!r}")
        canonical = " ".join(name.lower().split())
        if tokenize(canonical):
            forms.setdefault(canonical, [])
    # A generated plural never takes a form another entry names itself ("glass" + "glasses"
    # in one file: "glasses" stays its own entry) or one an earlier entry generated.
    claimed = {tuple(tokenize(canonical)) for canonical in forms}
    for canonical in forms:
        generated = []
        for plural in plural_forms(canonical):
            tokens = tuple(tokenize(plural))
            if tokens not in claimed:
                claimed.add(tokens)
                generated.append(plural)
        forms[canonical] = [canonical, *generated]
    return forms


def load_vocabulary(path: str | os.PathLike) -> dict[str, list[str]]:
    """canonical object name -> surface forms, from any of the formats in the module doc."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read vocabulary file {path}: {e}") from e
    if not text.strip():
        raise ValueError(f"vocabulary file {path} is empty")
    if path.suffix.lower() != ".json" and not text.lstrip().startswith(("{", "[")):
        lines = (line.split("#", 1)[0].strip() for line in text.splitlines())
        forms = _names_to_forms((line for line in lines if line), path)
    else:
        try:
            data = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{path} is not valid JSON ({e}); see docs/objects.md") from e
        if isinstance(data, dict) and isinstance(data.get("objects"), list):
            try:
                names = [entry["name"] for entry in data["objects"]]
            except (TypeError, KeyError) as e:
                raise ValueError(f"{path}: every entry of 'objects' needs a 'name'") from e
            forms = _names_to_forms(names, path)
        elif isinstance(data, list):
            forms = _names_to_forms(data, path)
        elif isinstance(data, dict):
            forms = {}
            for canonical, surface in data.items():
                if not isinstance(surface, list) or not all(isinstance(s, str) for s in surface):
                    raise ValueError(
                        f"{path}: the value of {canonical!r} must be a list of surface forms "
                        f"(strings), got {surface!r}"
                    )
                forms[canonical] = [canonical, *surface]
        else:
            raise ValueError(
                f"{path}: expected a JSON object or list, got {type(data).__name__}; "
                "see docs/objects.md for the vocabulary formats"
            )
    if not forms:
        raise ValueError(f"vocabulary file {path} holds no entries")
    return forms


# Matching rules shared by both strategies: a match starts and ends at a token boundary;
# the tokens of a multi-word form are separated by whitespace, hyphens or apostrophes, and
# any other punctuation breaks a multi-word form ("red, circle" is not "red circle").
_START = r"(?<![^\W_])"
_END = r"(?![^\W_])"
_SEPARATOR = r"[\s\-'\u2019]+"
# Word tokens, plus every other non-separator character as a token of its own.
_TOKEN_OR_PUNCT = re.compile(r"[^\W_]+|[^\s\-'\u2019]")
MAX_FORM_CHARS = 300

#: Up to this many surface forms the ``auto`` strategy compiles one regex (fastest
#: matching; build time grows with the vocabulary: ~2 s for 20,000 forms); above it, it
#: uses the token table (build ~1 s for 200,000 forms, matching speed independent of size).
REGEX_MAX_FORMS = 25_000


class VocabularyMatcher:
    """Finds the canonical objects of a caption (see the module doc for the rules).

    Two strategies with identical results (``strategy``):

    - ``regex``: every surface form in one regular expression shaped as a character trie
      (shared prefixes factored out, longer continuations tried before an entry's end),
      so a caption is matched in one pass of the regex engine;
    - ``tokens``: the caption's tokens looked up in a table keyed by an entry's first
      token, candidates longest first.

    ``auto`` picks ``regex`` up to :data:`REGEX_MAX_FORMS` surface forms, else ``tokens``.
    """

    def __init__(self, forms: Mapping[str, Iterable[str]], strategy: str = "auto") -> None:
        owner: dict[tuple[str, ...], str] = {}
        for canonical, surfaces in forms.items():
            for surface in surfaces:
                tokens = tuple(tokenize(surface))
                if not tokens:
                    continue
                other = owner.setdefault(tokens, canonical)
                if other != canonical:
                    raise ValueError(
                        f"surface form {' '.join(tokens)!r} belongs to both {other!r} and "
                        f"{canonical!r}; keep it under one of them"
                    )
        if not owner:
            raise ValueError("the vocabulary has no surface form with a letter or digit")
        if strategy == "auto":
            strategy = "regex" if len(owner) <= REGEX_MAX_FORMS else "tokens"
        self.strategy = strategy
        self.canonical_names: list[str] = list(forms)
        self.num_forms = len(owner)
        if strategy == "regex":
            self._canonical = {" ".join(tokens): c for tokens, c in owner.items()}
            self._regex = re.compile(_START + _char_trie_pattern(self._canonical))
            self._match = self._match_regex
        elif strategy == "tokens":
            table: dict[str, list[tuple[list[str], int, str]]] = {}
            for tokens, canonical in owner.items():
                table.setdefault(tokens[0], []).append(
                    (list(tokens[1:]), len(tokens) - 1, canonical)
                )
            for candidates in table.values():
                candidates.sort(key=lambda c: -c[1])
            self._table = table
            self._match = self._match_tokens
        else:
            raise ValueError(f"unknown matching strategy {strategy!r}: auto, regex or tokens")

    @classmethod
    def from_file(cls, path: str | os.PathLike, strategy: str = "auto") -> VocabularyMatcher:
        return cls(load_vocabulary(path), strategy)

    def match(self, text: str) -> list[str]:
        """Canonical objects named in ``text``, once each, in order of appearance."""
        return self._match(text)

    def _match_regex(self, text: str) -> list[str]:
        canonical = self._canonical
        found: list[str] = []
        for surface in self._regex.findall(text.lower()):
            name = canonical.get(surface) or canonical[" ".join(tokenize(surface))]
            if name not in found:
                found.append(name)
        return found

    def _match_tokens(self, text: str) -> list[str]:
        tokens = _TOKEN_OR_PUNCT.findall(text.lower())
        table = self._table
        starts = [i for i, token in enumerate(tokens) if token in table]
        found: list[str] = []
        free = 0  # first token not inside an earlier match
        for i in starts:
            if i < free:
                continue
            for rest, k, canonical in table[tokens[i]]:
                if k == 0 or tokens[i + 1 : i + 1 + k] == rest:
                    if canonical not in found:
                        found.append(canonical)
                    free = i + 1 + k
                    break
        return found


def _char_trie_pattern(forms: Iterable[str]) -> str:
    """One regex alternation of ``forms`` (tokens joined by single spaces) as a char trie."""
    trie: dict = {}
    for form in forms:
        if len(form) > MAX_FORM_CHARS:
            raise ValueError(f"surface form {form[:40]!r}... is over {MAX_FORM_CHARS} characters")
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[""] = {}  # an entry ends here

    def pattern(node: dict) -> str:
        # continuations first (longest match), the entry's end last
        parts = [
            (_SEPARATOR if char == " " else re.escape(char)) + pattern(node[char])
            for char in sorted(k for k in node if k)
        ]
        if "" in node:
            parts.append(_END)
        return parts[0] if len(parts) == 1 else "(?:" + "|".join(parts) + ")"

    return pattern(trie)


def file_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class VocabParser(ObjectParser):
    """``--parser vocab``: :class:`VocabularyMatcher` over a vocabulary file."""

    name = "vocab"
    batch_size = 4096

    def __init__(self, vocabulary: str | os.PathLike, strategy: str = "auto") -> None:
        self.path = Path(vocabulary)
        self.matcher = VocabularyMatcher.from_file(self.path, strategy)
        self._sha256 = file_sha256(self.path)

    def parse_batch(self, captions: Sequence[Caption]) -> list[list[str] | None]:
        match = self.matcher.match
        return [match(c.text) for c in captions]

    def identity(self) -> dict[str, Any]:
        return {"parser": self.name, "vocabulary_sha256": self._sha256}
