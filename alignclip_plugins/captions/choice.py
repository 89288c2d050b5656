"""One caption per image per epoch, for shards whose ``txt`` holds several (one a line).

A sample's captions are the non-empty lines of its ``txt`` member, stripped
(:func:`caption_lines`). ``--caption-choice`` says what the text encoder sees:

- ``all``: every line as one text, the member unchanged (upstream's behaviour: its
  tokenizer collapses the line breaks into spaces);
- ``first``: the first caption;
- ``random``: caption ``floor(u * k)`` of the sample's ``k``, where ``u`` in [0, 1) is a keyed
  hash of ``(seed, epoch, sample key)`` (:func:`alignclip_plugins.keyed_draws.draw_uniforms`).
  No RNG state: the draw is the same whatever the loader workers, the sample order or a
  ``--resume``, and changes every epoch.

A sample with no non-empty line is skipped (counted). :class:`CaptionChoiceStage` adds
``caption_count`` (k) and ``caption_index`` (the chosen line; None for ``all``) to each
sample, which later stages use (the alignclip plugin attaches that caption's object set).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator

from alignclip_plugins.keyed_draws import PassEpochs, draw_uniforms

log = logging.getLogger(__name__)

ALL, FIRST, RANDOM = "all", "first", "random"
CHOICES: tuple[str, ...] = (ALL, FIRST, RANDOM)
DEFAULT_CHOICE = ALL  # when no active plugin asks for another: upstream's behaviour

# Namespaces the caption draw, so that it is independent of the text-domain draws, which
# hash the same (seed, epoch, key).
_DRAW_KEY = "caption\x1f{}"


def caption_lines(text: str | bytes) -> list[str]:
    """The captions of a ``txt`` member: its non-empty lines, stripped, in order."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return [line.strip() for line in str(text).splitlines() if line.strip()]


def choose(choice: str, count: int, *, seed: int, epoch: int, key: str) -> int | None:
    """The index of the caption shown (None: ``all``) among ``count`` (>= 1) captions."""
    if count < 1:
        raise ValueError(f"sample {key!r} has no caption to choose from")
    if choice == ALL:
        return None
    if choice == FIRST or count == 1:
        return 0
    if choice != RANDOM:
        raise ValueError(f"caption choice must be one of {CHOICES}, got {choice!r}")
    (u,) = draw_uniforms(seed, epoch, _DRAW_KEY.format(key), count=1)
    return min(int(u * count), count - 1)


class CaptionChoiceStage:
    """webdataset stage: each sample's ``text`` becomes its chosen caption.

    ``epoch`` is upstream's ``SharedEpoch`` of the pipeline (None: count passes). Logs, per
    pass (one epoch of one loader worker), how many samples had k captions and how many were
    skipped for having none.
    """

    def __init__(self, choice: str, seed: int = 0, epoch=None) -> None:
        if choice not in CHOICES:
            raise ValueError(f"caption choice must be one of {CHOICES}, got {choice!r}")
        self.choice = choice
        self.seed = int(seed)
        self.epochs = PassEpochs(epoch)

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        epoch = self.epochs.next()
        counts: Counter[int] = Counter()
        skipped: list[str] = []
        try:
            for sample in src:
                lines = caption_lines(sample["text"])
                if not lines:
                    skipped.append(f"{sample.get('__key__')!r} of {sample.get('__url__')}")
                    continue
                counts[len(lines)] += 1
                index = choose(
                    self.choice, len(lines), seed=self.seed, epoch=epoch, key=sample["__key__"]
                )
                sample["caption_count"] = len(lines)
                sample["caption_index"] = index
                if index is not None:
                    sample["text"] = lines[index]
                yield sample
        finally:
            if counts or skipped:
                self.log_pass(epoch, counts, skipped)

    def log_pass(self, epoch: int, counts: Counter, skipped: list[str]) -> None:
        log.log(
            logging.WARNING if skipped else logging.INFO,
            "captions, %s",
            format_caption_counts(epoch, self.choice, counts, skipped),
        )


def format_caption_counts(epoch: int, choice: str, counts: Counter, skipped: list[str]) -> str:
    """'epoch E (choice C): N samples: a with 1 caption, b with 5 captions; S skipped ...'."""
    total = sum(counts.values())
    parts = ", ".join(
        f"{n} with {k} caption{'s' if k != 1 else ''}" for k, n in sorted(counts.items())
    )
    text = f"epoch {epoch} (choice {choice}): {total} samples" + (f": {parts}" if parts else "")
    if skipped:
        shown = ", ".join(skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        text += f"; {len(skipped)} skipped: no non-empty caption line ({shown})"
    return text
