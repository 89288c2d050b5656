"""What the training split holds that soft labels are about, measured on its sample plans.

Both papers start from web pairs that are many-to-many (two captions of a batch name the
same object), noisy (mismatched pairs, captions that leave objects out, near-duplicate
scenes) and long-tailed. :func:`measure` counts each of these on the generated training
split; ``alignclip synth`` writes the result to ``statistics.json`` and prints it, and
docs/synthetic.md explains the numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from alignclip_plugins.synthetic.classes import CLASS_NAMES, NUM_CLASSES, class_index
from alignclip_plugins.synthetic.config import SynthConfig
from alignclip_plugins.synthetic.plan import SamplePlan, num_shards, plan_shard

STATISTICS_FILE = "statistics.json"
BATCH_SIZE = 64  # the in-batch numbers are for alignclip demo's batch size
PAIR_SAMPLE = 4096  # pair fractions are exact up to this many samples, else estimated on a sample


@dataclass(frozen=True)
class TrainStatistics:
    """Fractions in [0, 1] unless named otherwise; "pairs" are ordered pairs i != j.

    ``pairs_sharing_object``: pairs whose images share at least one object class;
    ``pairs_sharing_caption_object``: pairs whose captions name a common class (Object-IoU
    targets > 0); ``sharing_per_batch``: mean number of other samples of a random batch of
    ``batch_size`` whose image shares an object with a sample's image; ``mismatched``:
    pairs captioned with another image's caption; ``omitting``: matched captions that leave
    out at least one object class of their image (neither named nor mentioned by shape);
    ``shape_only``: matched captions that mention at least one object by its shape alone
    ("a ring": the colour unsaid, so the class is not named); ``duplicates``: scenes repeating the
    objects of another scene; ``objects_per_image``: mean object count;
    ``tail_classes``: the least frequent ``tail_fraction`` of the classes, and
    ``tail_instances`` their share of all object instances; ``head_to_tail``: instances of
    the most frequent class per instance of the least frequent one.
    """

    samples: int
    batch_size: int
    pair_samples: int
    pairs_sharing_object: float
    pairs_sharing_caption_object: float
    sharing_per_batch: float
    mismatched: float
    omitting: float
    shape_only: float
    duplicates: float
    objects_per_image: float
    tail_classes: list[str]
    tail_instances: float
    head_to_tail: float

    def as_dict(self) -> dict:
        return asdict(self)


def _sets(rows: list[tuple[int, ...]]) -> np.ndarray:
    """(n, 48) bool: which classes each row holds."""
    out = np.zeros((len(rows), NUM_CLASSES), dtype=bool)
    for i, ids in enumerate(rows):
        out[i, list(ids)] = True
    return out


def _pair_fraction(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of ordered pairs i != j with ``a[i]`` and ``b[j]`` sharing a class."""
    shared = (a.astype(np.float32) @ b.astype(np.float32).T) > 0
    np.fill_diagonal(shared, False)
    n = len(a)
    return float(shared.sum()) / (n * (n - 1)) if n > 1 else 0.0


def train_plans(config: SynthConfig, probabilities: np.ndarray) -> list[SamplePlan]:
    """Every training sample's plan, in key order."""
    return [
        plan
        for shard in range(num_shards(config, "train"))
        for plan in plan_shard(config, "train", shard, probabilities)
    ]


def measure(
    config: SynthConfig,
    plans: list[SamplePlan],
    tail: np.ndarray,
    counts: np.ndarray,
    batch_size: int = BATCH_SIZE,
) -> TrainStatistics:
    """The statistics of the training split ``plans`` (tail mask and instance counts (48,)
    as in ``classes.json``)."""
    n = len(plans)
    pick = np.arange(n)
    if n > PAIR_SAMPLE:
        pick = np.sort(np.random.default_rng(config.seed).choice(n, PAIR_SAMPLE, replace=False))
    images = _sets([plans[i].class_ids for i in pick])
    named = _sets(
        [tuple(class_index(c) for c in plans[i].caption.objects) for i in pick]  # type: ignore[union-attr]
    )
    sharing = _pair_fraction(images, images)
    matched = [p for p in plans if p.matched]
    mentioned = [set(p.caption.objects) | set(p.caption.shape_only) for p in matched]  # type: ignore[union-attr]
    omitting = sum(len(m) < len(set(p.class_ids)) for m, p in zip(mentioned, matched))
    shape_only = sum(bool(p.caption.shape_only) for p in matched)  # type: ignore[union-attr]
    nonzero = counts[counts > 0]
    return TrainStatistics(
        samples=n,
        batch_size=batch_size,
        pair_samples=len(pick),
        pairs_sharing_object=sharing,
        pairs_sharing_caption_object=_pair_fraction(named, named),
        sharing_per_batch=sharing * (batch_size - 1),
        mismatched=1 - len(matched) / n if n else 0.0,
        omitting=omitting / len(matched) if matched else 0.0,
        shape_only=shape_only / len(matched) if matched else 0.0,
        duplicates=sum(p.duplicate_of is not None for p in plans) / n if n else 0.0,
        objects_per_image=float(np.mean([len(p.class_ids) for p in plans])) if n else 0.0,
        tail_classes=[CLASS_NAMES[c] for c in np.flatnonzero(tail)],
        tail_instances=float(counts[tail].sum() / counts.sum()) if counts.sum() else 0.0,
        head_to_tail=float(nonzero.max() / nonzero.min()) if len(nonzero) else 0.0,
    )


def format_statistics(stats: TrainStatistics) -> str:
    """The lines ``alignclip synth`` prints."""
    pct = lambda x: f"{100 * x:.1f}%"  # noqa: E731
    estimated = "" if stats.pair_samples == stats.samples else f" (on {stats.pair_samples})"
    return "\n".join(
        [
            f"  training pairs sharing an object: {pct(stats.pairs_sharing_object)} of image "
            f"pairs{estimated}, {pct(stats.pairs_sharing_caption_object)} of caption pairs "
            f"(Object-IoU > 0); {stats.sharing_per_batch:.1f} other samples per batch of "
            f"{stats.batch_size}",
            f"  noise: {pct(stats.mismatched)} mismatched pairs, {pct(stats.omitting)} of matched "
            f"captions leave an object out, {pct(stats.shape_only)} name one by its shape alone, "
            f"{pct(stats.duplicates)} near-duplicate scenes; "
            f"{stats.objects_per_image:.2f} objects per image",
            f"  long tail: {len(stats.tail_classes)} tail classes hold "
            f"{pct(stats.tail_instances)} of the objects; head/tail frequency "
            f"{stats.head_to_tail:.0f}x",
        ]
    )
