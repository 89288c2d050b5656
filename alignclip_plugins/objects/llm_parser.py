"""The ``llm`` parser: the supplement's caption-objects prompt, answers split on commas.

Answer handling (:func:`parse_objects_answer`): a ``<think>...</think>`` block and a
leading "Objects:" label are dropped; items are split on commas (also on semicolons and
line breaks, for models that answer with a list); bullets, list numbers, a leading
"and"/"or" and quantities ("a group of people" -> "people") are removed; "X of Y" gives
two objects ("bottle of wine" -> "bottle", "wine"); each item is then normalised like
every backend's (lower case, head singular, stop-list). "None" is a valid empty answer.

An answer is *malformed* when it is empty or holds an item that is no object name (more
than :data:`MAX_WORDS` words, or a word of :data:`CHATTER` such as "sorry", "there", "is":
a sentence or a refusal). Malformed answers never stop the run: their
valid items are kept, they are counted, logged (the first few) and written to
``errors_path`` as JSONL with the caption's input, key, caption and answer.
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from alignclip_plugins.llm.cache import ChatCache
from alignclip_plugins.llm.client import ChatClient
from alignclip_plugins.llm.prompts import CAPTION_OBJECTS_PROMPT, caption_objects_messages
from alignclip_plugins.llm.runner import ChatRequest, RunnerStats, ask_many
from alignclip_plugins.objects.normalize import normalize_object, unique
from alignclip_plugins.objects.parsing import Caption, ObjectParser

log = logging.getLogger(__name__)

MAX_WORDS = 6
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_LABEL = re.compile(r"^\s*(?:the\s+)?(?:objects?|answer)(?:\s+\w+){0,3}\s*:\s*", re.I)
_SEPARATORS = re.compile(r"[,;\n]")
_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)])\s+")
_CONJUNCTION = re.compile(r"^(?:and|or|&)\s+", re.I)
_QUANTITY = re.compile(
    r"^(?:(?:a|an|the|two|some|several|many)\s+)?(?:group|groups|pair|pairs|bunch|couple|"
    r"lot|lots|set|sets|pile|herd|flock|crowd|stack|row|rows|number|variety|collection|"
    r"piece|pieces|slice|slices|kind|type|team|line|cluster|handful|plenty)\s+of\s+",
    re.I,
)
_OF = re.compile(r"\s+of\s+", re.I)
_NONE = frozenset({"none", "no objects", "nothing", "n/a", "no object", "none."})
# Words that make an item chatter rather than an object name ("I'm sorry", "there is").
CHATTER: frozenset[str] = frozenset(
    "i i'm im i’m me my you sorry cannot can't can’t unable please however sure "
    "certainly here there is are was were am be been contains contain include includes "
    "mentioned caption objects".split()
)


def parse_objects_answer(answer: str) -> tuple[list[str], str | None]:
    """``(objects, problem)``: the normalised distinct objects of an LLM answer, and why
    it is malformed (``None`` when it is not)."""
    text = _THINK.sub(" ", answer).strip()
    text = _LABEL.sub("", text, count=1).strip()
    if not text:
        return [], "empty answer"
    if text.lower().rstrip(".") in _NONE:
        return [], None
    objects: list[str | None] = []
    problems: list[str] = []
    for raw in _SEPARATORS.split(text):
        item = _BULLET.sub("", raw).strip().strip("\"'`*").rstrip(".").strip()
        item = _CONJUNCTION.sub("", item)
        if not item:
            continue
        words = item.lower().split()
        if len(words) > MAX_WORDS or any(w.strip(".!?:") in CHATTER for w in words):
            problems.append(f"not an object name: {item[:60]!r}")
            continue
        item = _QUANTITY.sub("", item)
        objects.extend(normalize_object(part) for part in _OF.split(item))
    found = unique(objects)
    if problems:
        return found, "; ".join(problems)
    return found, None


def read_malformed(path: str | os.PathLike) -> set[tuple[str, str]]:
    """The ``(source, key)`` of every malformed answer recorded in ``path`` (JSONL); a
    truncated last line (interrupted write) is ignored."""
    found: set[tuple[str, str]] = set()
    if not os.path.exists(path):
        return found
    with open(path, encoding="utf-8", errors="replace") as f:
        for line in f:
            try:
                record = json.loads(line)
                found.add((str(record["source"]), str(record["key"])))
            except (ValueError, KeyError, TypeError):
                continue
    return found


class LLMParser(ObjectParser):
    """``--parser llm``: concurrent, cached requests to an OpenAI-compatible endpoint."""

    name = "llm"

    def __init__(
        self,
        client: ChatClient,
        cache: ChatCache,
        workers: int = 8,
        errors_path: str | os.PathLike | None = None,
        batch_size: int | None = None,
        max_consecutive_failures: int = 20,
    ) -> None:
        self.client = client
        self.cache = cache
        self.workers = workers
        self.batch_size = batch_size or max(64, 32 * workers)
        self.errors_path = Path(errors_path) if errors_path else None
        self.max_consecutive_failures = max_consecutive_failures
        self.runner_stats = RunnerStats()
        self.malformed = 0
        self._logged = 0
        self._recorded = read_malformed(self.errors_path) if self.errors_path else set()

    def parse_batch(self, captions: Sequence[Caption]) -> list[list[str] | None]:
        requests = [
            ChatRequest(i, caption_objects_messages(c.text), meta={"caption": c.text})
            for i, c in enumerate(captions)
            if c.text.strip()
        ]
        results: list[list[str] | None] = [[] for _ in captions]
        errors: list[dict[str, Any]] = []
        for result in ask_many(
            self.client,
            self.cache,
            requests,
            workers=self.workers,
            max_consecutive_failures=self.max_consecutive_failures,
            stats=self.runner_stats,
        ):
            caption = captions[result.id]
            if result.answer is None:
                results[result.id] = None
                self._log("request failed for %s key %r: %s", caption, result.error)
                continue
            objects, problem = parse_objects_answer(result.answer)
            results[result.id] = objects
            if problem:
                self.malformed += 1
                self._log("malformed answer for %s key %r: %s", caption, problem)
                if (caption.source, caption.key) in self._recorded:
                    continue  # recorded by an earlier, interrupted run
                self._recorded.add((caption.source, caption.key))
                errors.append(
                    {
                        "source": caption.source,
                        "key": caption.key,
                        "caption": caption.text,
                        "answer": result.answer,
                        "problem": problem,
                    }
                )
        if errors and self.errors_path is not None:
            with open(self.errors_path, "a+b") as f:
                if f.tell() > 0:  # end a line cut short by an interrupted run
                    f.seek(-1, os.SEEK_END)
                    if f.read(1) != b"\n":
                        f.write(b"\n")
                f.writelines((json.dumps(e, ensure_ascii=False) + "\n").encode() for e in errors)
        return results

    def _log(self, message: str, caption: Caption, detail: str | None) -> None:
        self._logged += 1
        if self._logged <= 10:
            log.warning(message, caption.source, caption.key, detail)
        elif self._logged == 11:
            log.warning("further failed or malformed answers are counted, not logged")

    def identity(self) -> dict[str, Any]:
        return {"parser": self.name, "model": self.client.model, "prompt": CAPTION_OBJECTS_PROMPT}

    def counters(self) -> dict[str, int]:
        counts = self.runner_stats.as_dict()
        return {
            "llm_requests": counts["requests"],
            "llm_cache_hits": counts["cache_hits"],
            "llm_failed_requests": counts["failed"],
            # across runs when recorded in a file (a resumed run re-reads cached answers)
            "malformed_answers": len(self._recorded) if self.errors_path else self.malformed,
        }

    def close(self) -> None:
        self.cache.close()
