"""Sample plans: everything about a sample except its pixels, drawn per (seed, split, shard).

Every random draw comes from a generator seeded by (seed, split, shard, stream), so any shard
can be planned or rendered alone. Object classes use their own stream: counting the training
objects of all shards (for ``classes.json`` and the tail) never has to place or caption them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from alignclip_plugins.synthetic.captions import Caption, clean_caption, noisy_caption
from alignclip_plugins.synthetic.classes import NUM_CLASSES
from alignclip_plugins.synthetic.config import SPLITS, SynthConfig
from alignclip_plugins.synthetic.scene import Box, place_objects

STREAM_OBJECTS, STREAM_LAYOUT, STREAM_RENDER = 0, 1, 2


@dataclass(frozen=True)
class SamplePlan:
    """One sample before rendering.

    ``caption`` is the caption stored with the image (another image's when ``matched`` is
    False); None in the zero-shot split, whose samples carry ``label`` instead.
    ``duplicate_of`` is the key of the earlier training scene whose objects this one shows
    again (a near-duplicate), else None.
    """

    key: str
    class_ids: tuple[int, ...]
    boxes: tuple[Box, ...]
    caption: Caption | None = None
    matched: bool = True
    label: int | None = None
    duplicate_of: str | None = None


def split_size(config: SynthConfig, split: str) -> int:
    """Number of samples in ``split``."""
    sizes = {
        "train": config.train_samples,
        "retrieval": config.retrieval_samples,
        "zeroshot": config.zeroshot_per_class * NUM_CLASSES,
    }
    if split not in sizes:
        raise ValueError(f"unknown split {split!r}; splits are {SPLITS}")
    return sizes[split]


def num_shards(config: SynthConfig, split: str) -> int:
    """Number of shards of ``split`` (the last one may be short)."""
    return -(-split_size(config, split) // config.shard_size)


def shard_range(config: SynthConfig, split: str, shard: int) -> range:
    """Split-wide sample indices held by ``shard``."""
    if not 0 <= shard < num_shards(config, split):
        raise ValueError(f"{split} has {num_shards(config, split)} shards, no shard {shard}")
    start = shard * config.shard_size
    return range(start, min(start + config.shard_size, split_size(config, split)))


def shard_rng(seed: int, split: str, shard: int, stream: int) -> np.random.Generator:
    """The generator of one random stream of one shard."""
    return np.random.default_rng(np.random.SeedSequence([seed, SPLITS.index(split), shard, stream]))


def _split_into(flat: np.ndarray, counts: np.ndarray) -> list[tuple[int, ...]]:
    ends = np.cumsum(counts)
    return [tuple(int(c) for c in flat[end - n : end]) for n, end in zip(counts, ends)]


def shard_objects(
    config: SynthConfig, split: str, shard: int, probabilities: np.ndarray
) -> list[tuple[int, ...]]:
    """Class ids of the objects of each sample of a shard (see :func:`shard_scenes`)."""
    return [ids for ids, _ in shard_scenes(config, split, shard, probabilities)]


def shard_scenes(
    config: SynthConfig, split: str, shard: int, probabilities: np.ndarray
) -> list[tuple[tuple[int, ...], int | None]]:
    """``(class ids, index of the duplicated sample or None)`` of each sample of a shard.

    train: 1 to ``max_objects`` objects (``count_weights``) drawn i.i.d. from
    ``probabilities`` (48,) (so repeats happen); a ``duplicates`` fraction of the samples
    after the first instead repeats the objects of a uniformly chosen earlier sample of the
    shard (its split-wide index is returned). retrieval: the same counts, uniform classes, no
    duplicates; zeroshot: one object, class = index % 48.
    """
    indices = shard_range(config, split, shard)
    if split == "zeroshot":
        return [((i % NUM_CLASSES,), None) for i in indices]
    rng = shard_rng(config.seed, split, shard, STREAM_OBJECTS)
    weights = np.asarray(config.count_weights, dtype=np.float64)
    counts = 1 + rng.choice(len(weights), size=len(indices), p=weights / weights.sum())
    p = probabilities if split == "train" else None
    drawn = _split_into(rng.choice(NUM_CLASSES, size=int(counts.sum()), p=p), counts)
    if split != "train" or config.duplicates == 0:
        return [(ids, None) for ids in drawn]
    repeat = rng.random(len(indices)) < config.duplicates
    sources = rng.random(len(indices))
    scenes: list[tuple[tuple[int, ...], int | None]] = []
    for j, ids in enumerate(drawn):
        if j and repeat[j]:
            source = int(sources[j] * j)  # an earlier sample of this shard
            scenes.append((scenes[source][0], indices[source]))
        else:
            scenes.append((ids, None))
    return scenes


def train_counts(config: SynthConfig, probabilities: np.ndarray) -> np.ndarray:
    """(48,) int64: object instances per class over the whole training split."""
    counts = np.zeros(NUM_CLASSES, dtype=np.int64)
    for shard in range(num_shards(config, "train")):
        flat = [c for ids in shard_objects(config, "train", shard, probabilities) for c in ids]
        counts += np.bincount(flat, minlength=NUM_CLASSES)
    return counts


def _mismatch(
    own: Sequence[Caption], config: SynthConfig, rng: np.random.Generator
) -> list[tuple[Caption, bool]]:
    """(caption, matched) per sample: a ``config.mismatch`` fraction gets another's caption."""
    out = []
    for i, caption in enumerate(own):
        if len(own) > 1 and rng.random() < config.mismatch:
            other = int(rng.integers(len(own) - 1))
            out.append((own[other + (other >= i)], False))
        else:
            out.append((caption, True))
    return out


def plan_shard(
    config: SynthConfig, split: str, shard: int, probabilities: np.ndarray
) -> list[SamplePlan]:
    """Plans of every sample of a shard, in key order.

    Mismatched captions come from another image of the same shard (a one-sample shard has
    nothing to mismatch with and stays matched).
    """
    scenes = shard_scenes(config, split, shard, probabilities)
    keys = [f"{i:08d}" for i in shard_range(config, split, shard)]
    rng = shard_rng(config.seed, split, shard, STREAM_LAYOUT)
    boxes = [tuple(place_objects(len(ids), config.image_size, rng)) for ids, _ in scenes]
    if split == "zeroshot":
        return [
            SamplePlan(key=k, class_ids=ids, boxes=b, label=ids[0])
            for k, (ids, _), b in zip(keys, scenes, boxes)
        ]
    if split == "retrieval":
        captions = [(clean_caption(ids, rng), True) for ids, _ in scenes]
    else:
        own = [noisy_caption(ids, rng, config.mention, config.colour_mention) for ids, _ in scenes]
        captions = _mismatch(own, config, rng)
    return [
        SamplePlan(
            key=k,
            class_ids=ids,
            boxes=b,
            caption=c,
            matched=m,
            duplicate_of=None if source is None else f"{source:08d}",
        )
        for k, (ids, source), b, (c, m) in zip(keys, scenes, boxes, captions)
    ]
