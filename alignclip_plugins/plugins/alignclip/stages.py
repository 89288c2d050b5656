"""The training sample stages of ``--plugins alignclip``: each sample's object ids, then its
text domain (docs/methods.md, "AlignCLIP data": "Text domains with tail weighting").

:func:`training_stages` builds them from the options:
:class:`~alignclip_plugins.objects.sample_objects.AttachObjectIds` adds ``image_objects``
(the sample's caption object set O, from the shard's sidecar), then
:class:`TextDomainStage` chooses the text the text encoder sees and its object set.

For every training sample with image-side object set ``O`` (object ids) the text fed to
the text encoder is, with probabilities ``(p_caption, p_prompt, p_description)``:

- ``caption``: the sample's own caption; its text-side set is ``Q = O``;
- ``prompt``: a prompt template ("a photo of a {}.") filled with one object ``o`` of ``O``;
  ``Q = {o}``;
- ``description``: one visual description of one object ``o`` of ``O``; ``Q = {o}``.

The object is drawn from ``O`` with weight ``freq(o) ** -rho`` (``rho = 0``: uniform; larger
``rho`` favours rarer, tail objects); the template or description is then drawn uniformly.

Fallbacks (counted by :class:`TextDomainStage` and logged every epoch):

- ``O`` empty (no parsed object in the vocabulary): the caption, ``Q = O = {}``;
- description drawn but no object of ``O`` has a description: a prompt of an object of
  ``O`` (drawn as for the prompt domain), so the text stays object-level.
  Otherwise the description domain draws among the described objects of ``O`` only.

Draws are a pure function of ``(seed, epoch, sample key)`` (a keyed hash, no RNG state:
:mod:`alignclip_plugins.keyed_draws`), so a run is reproducible whatever the sample order,
loader workers or resumption, and every epoch draws anew. Probabilities ``(1, 0, 0)``
return every caption unchanged.
"""

from __future__ import annotations

import argparse
import bisect
import logging
import math
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from alignclip_plugins.keyed_draws import PassEpochs, draw_uniforms
from alignclip_plugins.plugins.alignclip import options

log = logging.getLogger(__name__)

CAPTION, PROMPT, DESCRIPTION = "caption", "prompt", "description"
DOMAINS: tuple[str, str, str] = (CAPTION, PROMPT, DESCRIPTION)

_TOLERANCE = 1e-6


def pick_weighted(weights: Sequence[float], u: float) -> int:
    """Index ``i`` with probability ``weights[i] / sum(weights)`` for ``u`` uniform in [0, 1)."""
    cumulative, total = [], 0.0
    for w in weights:
        total += w
        cumulative.append(total)
    index = bisect.bisect_right(cumulative, u * total)
    return min(index, len(weights) - 1)


@dataclass(frozen=True)
class Draw:
    """The text fed for one sample and its text-side object ids.

    ``domain`` is the domain used; ``requested`` the one drawn (they differ on a fallback).
    """

    text: str
    objects: tuple[int, ...]
    domain: str
    requested: str


class TextDomains:
    """Draws the text domain, object and template/description of each sample.

    ``frequencies[o]`` is the count of object id ``o`` (> 0; the vocabulary's counts),
    ``templates`` are format strings with ``{}``, ``descriptions`` maps object ids to their
    visual descriptions, ``names[o]`` is the text an object id stands for.
    """

    def __init__(
        self,
        probabilities: Sequence[float],
        *,
        names: Sequence[str],
        frequencies: Sequence[float],
        templates: Sequence[str] = (),
        descriptions: Mapping[int, Sequence[str]] | None = None,
        rho: float = 0.0,
        seed: int = 0,
    ) -> None:
        p = tuple(float(x) for x in probabilities)
        if len(p) != 3 or min(p) < 0 or abs(sum(p) - 1.0) > 1e-3:
            raise ValueError(f"need three probabilities >= 0 summing to 1, got {probabilities}")
        if not math.isfinite(rho) or rho < 0:
            raise ValueError(f"rho must be a finite number >= 0, got {rho}")
        if len(names) != len(frequencies):
            raise ValueError(f"{len(names)} names but {len(frequencies)} frequencies")
        bad = [names[i] for i, f in enumerate(frequencies) if not f > 0]
        if bad:
            raise ValueError(f"object frequencies must be > 0; not for {bad[:5]}")
        templates = [str(t) for t in templates]
        if (p[1] > 0 or p[2] > 0) and not templates:
            raise ValueError("the prompt domain (and the description fallback) needs templates")
        missing_slot = [t for t in templates if "{}" not in t]
        if missing_slot:
            raise ValueError(f"templates need '{{}}' for the object name, got {missing_slot[0]!r}")
        self.probabilities = p
        self.names = list(names)
        self.templates = templates
        self.descriptions = {
            int(o): tuple(texts) for o, texts in (descriptions or {}).items() if texts
        }
        if p[2] > 0 and not self.descriptions:
            raise ValueError("the description domain needs descriptions of some objects")
        self.rho = float(rho)
        self.seed = int(seed)
        self.weights = [float(f) ** -self.rho for f in frequencies]
        self._edges = (p[0], p[0] + p[1])

    @property
    def identity(self) -> bool:
        """True when every text is the caption itself (``p_caption = 1``)."""
        return self.probabilities[0] >= 1.0 - _TOLERANCE

    def domain_of(self, u: float) -> str:
        """The domain a uniform number ``u`` in [0, 1) falls into."""
        if u < self._edges[0]:
            return CAPTION
        if u < self._edges[1] or self.probabilities[2] == 0:
            return PROMPT
        return DESCRIPTION

    def pick_object(self, objects: Sequence[int], u: float) -> int:
        """One of ``objects`` (non-empty), with probability proportional to freq^-rho."""
        return objects[pick_weighted([self.weights[o] for o in objects], u)]

    def draw(self, caption: str, objects: Sequence[int], key: str, epoch: int = 0) -> Draw:
        """The text for a sample with caption ``caption``, object ids ``objects`` (its set O)."""
        objects = tuple(dict.fromkeys(int(o) for o in objects))
        if self.identity:
            return Draw(caption, objects, CAPTION, CAPTION)
        u_domain, u_object, u_text = draw_uniforms(self.seed, epoch, key)
        requested = self.domain_of(u_domain)
        if requested == CAPTION or not objects:
            return Draw(caption, objects, CAPTION, requested)
        if requested == DESCRIPTION:
            described = [o for o in objects if o in self.descriptions]
            if described:
                o = self.pick_object(described, u_object)
                texts = self.descriptions[o]
                return Draw(texts[int(u_text * len(texts))], (o,), DESCRIPTION, requested)
        o = self.pick_object(objects, u_object)
        template = self.templates[int(u_text * len(self.templates))]
        return Draw(template.format(self.names[o]), (o,), PROMPT, requested)


class TextDomainStage:
    """webdataset stage: rewrites ``text`` and adds ``text_objects`` (tuple of ids).

    Reads ``text``, ``image_objects`` (added by
    :class:`alignclip_plugins.objects.sample_objects.AttachObjectIds`) and ``__key__``.
    ``epoch`` is upstream's ``SharedEpoch`` of the pipeline (None: count passes). Logs the
    domains used per pass (one pass = one epoch of one loader worker).
    """

    def __init__(self, domains: TextDomains, epoch=None) -> None:
        self.domains = domains
        self.epochs = PassEpochs(epoch)

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        epoch = self.epochs.next()
        used: Counter[str] = Counter()
        fallbacks: Counter[tuple[str, str]] = Counter()
        try:
            for sample in src:
                d = self.domains.draw(
                    sample["text"], sample["image_objects"], sample["__key__"], epoch
                )
                sample["text"] = d.text
                sample["text_objects"] = d.objects
                used[d.domain] += 1
                if d.domain != d.requested:
                    fallbacks[(d.requested, d.domain)] += 1
                yield sample
        finally:
            if used and not self.domains.identity:
                log.info("alignclip text domains, %s", format_domain_counts(epoch, used, fallbacks))


def format_domain_counts(
    epoch: int, used: Mapping[str, int], fallbacks: Mapping[tuple[str, str], int]
) -> str:
    """'epoch E: N texts: a captions, b prompts, c descriptions (fallbacks ...)'."""
    total = sum(used.values())
    parts = ", ".join(f"{used.get(d, 0)} {d}s" for d in DOMAINS)
    text = f"epoch {epoch}: {total} texts: {parts}"
    if fallbacks:
        why = {
            CAPTION: "empty object set",
            PROMPT: "no object with a description",
        }
        text += "; fallbacks: " + ", ".join(
            f"{n} {a} -> {b} ({why[b]})" for (a, b), n in sorted(fallbacks.items())
        )
    return text


def training_stages(args: argparse.Namespace, epoch=None) -> list:
    """The training stages: attach object ids (O_i), then the three text domains (Q_j).

    ``epoch``: upstream's ``SharedEpoch`` of the pipeline (None: each stage counts passes).
    """
    from alignclip_plugins.objects.sample_objects import (
        AttachObjectIds,
        SidecarIndex,
        vocabulary_ids,
    )

    vocabulary = options.load_vocabulary(args)
    names = vocabulary.names
    domains = TextDomains(
        args.alignclip_domains,
        names=names,
        frequencies=[vocabulary.counts[n] for n in names],
        templates=options.training_templates(args),
        descriptions=options.training_descriptions(args, names),
        rho=args.alignclip_rho,
        seed=args.seed,
    )
    attach = AttachObjectIds(
        SidecarIndex.from_option(args.alignclip_objects),
        vocabulary_ids(names),
        allow_missing=args.alignclip_allow_missing_sidecars,
        epoch=epoch,
    )
    return [attach, TextDomainStage(domains, epoch)]
