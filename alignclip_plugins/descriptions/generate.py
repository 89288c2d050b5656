"""Visual descriptions of objects or classes from an LLM (the supplement's appearance prompt).

Output: a JSON object ``{"name": ["description", ...], ...}`` in the order of the names,
written atomically. ``n`` descriptions per name are separate requests (cache variants
0..n-1), so any OpenAI-compatible server works (no reliance on the ``n`` parameter).
Every answer is cached as it arrives: a rerun asks only for what is missing. An empty
answer is counted, logged and left out (and not cached, so a rerun asks again).
"""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alignclip_plugins.io.atomic import atomic_write_text
from alignclip_plugins.llm.cache import ChatCache
from alignclip_plugins.llm.client import ChatClient
from alignclip_plugins.llm.prompts import appearance_messages
from alignclip_plugins.llm.runner import ChatRequest, RunnerStats, ask_many

log = logging.getLogger(__name__)

_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)


def read_classnames(path: str | os.PathLike) -> list[str]:
    """Class names, one a line (blank lines and ``#`` comments skipped), or a JSON list."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ValueError(f"cannot read class-name file {path}: {e}") from e
    if text.lstrip().startswith("["):
        try:
            names = json.loads(text)
        except ValueError as e:
            raise ValueError(f"{path}: not a JSON list of class names ({e})") from e
        if not all(isinstance(n, str) for n in names):
            raise ValueError(f"{path}: every class name must be a string")
    else:
        names = [line.strip() for line in text.splitlines()]
        names = [n for n in names if n and not n.startswith("#")]
    names = [" ".join(n.split()) for n in names]
    distinct = list(dict.fromkeys(n for n in names if n))
    if not distinct:
        raise ValueError(f"{path} holds no class names")
    return distinct


def read_vocabulary_names(path: str | os.PathLike) -> list[str]:
    """Object names of a vocabulary file (any format ``alignclip objects parse`` reads)."""
    from alignclip_plugins.objects.vocabulary import load_vocabulary

    return list(load_vocabulary(path))


def clean_description(answer: str) -> str | None:
    """The answer without a reasoning block or surrounding whitespace; ``None`` if empty."""
    text = _THINK.sub(" ", answer).strip()
    return text or None


@dataclass
class DescribeResult:
    """Descriptions by name, and what went wrong."""

    descriptions: dict[str, list[str]]
    missing: list[str]  # names lacking at least one of their n descriptions
    malformed: int
    stats: RunnerStats


def describe(
    names: Sequence[str],
    client: ChatClient,
    cache: ChatCache,
    n: int = 1,
    workers: int = 8,
    temperature: float | None = None,
    progress: bool = True,
) -> DescribeResult:
    """Ask for ``n`` descriptions of every name (cached answers reused)."""
    from tqdm import tqdm

    if n < 1:
        raise ValueError(f"--n must be >= 1, got {n}")
    requests = [
        ChatRequest((name, variant), appearance_messages(name), variant, {"name": name})
        for name in names
        for variant in range(n)
    ]
    answers: dict[tuple[str, int], str] = {}
    stats = RunnerStats()
    malformed = 0
    with tqdm(
        total=len(requests), unit=" descriptions", desc="describe", disable=not progress
    ) as bar:
        for result in ask_many(
            client,
            cache,
            requests,
            workers=workers,
            temperature=temperature,
            stats=stats,
            cache_if=lambda answer: clean_description(answer) is not None,
        ):
            bar.update(1)
            name, _ = result.id
            if result.answer is None:
                log.warning("no description of %r: %s", name, result.error)
                continue
            text = clean_description(result.answer)
            if text is None:
                malformed += 1
                log.warning("empty description of %r (answer %r); left out", name, result.answer)
                continue
            answers[result.id] = text
    descriptions: dict[str, list[str]] = {}
    missing: list[str] = []
    for name in names:
        texts = [answers[(name, v)] for v in range(n) if (name, v) in answers]
        if texts:
            descriptions[name] = texts
        if len(texts) < n:
            missing.append(name)
    return DescribeResult(descriptions, missing, malformed, stats)


def write_descriptions(path: str | os.PathLike, descriptions: dict[str, list[str]]) -> None:
    """Write ``{"name": ["description", ...]}`` atomically."""
    atomic_write_text(path, json.dumps(descriptions, indent=2, ensure_ascii=False) + "\n")


def load_descriptions(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a descriptions file, checking its shape."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ValueError(f"cannot read descriptions file {path}: {e}") from e
    if not isinstance(data, dict) or not all(
        isinstance(v, list) and all(isinstance(t, str) for t in v) for v in data.values()
    ):
        raise ValueError(f'{path}: expected {{"name": ["description", ...], ...}}')
    return data
