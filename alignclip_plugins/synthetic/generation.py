"""Generation of a whole dataset directory: shards of every split, metadata, manifest last."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from alignclip_plugins.io.atomic import atomic_write_text
from alignclip_plugins.synthetic.classes import (
    CLASS_NAMES,
    class_parts,
    class_ranks,
    tail_mask,
    vocabulary,
    zipf_probabilities,
)
from alignclip_plugins.synthetic.config import SPLITS, SynthConfig
from alignclip_plugins.synthetic.descriptions import visual_descriptions
from alignclip_plugins.synthetic.manifest import build_manifest, prepare_output, write_manifest
from alignclip_plugins.synthetic.plan import (
    STREAM_RENDER,
    num_shards,
    plan_shard,
    shard_range,
    shard_rng,
    split_size,
    train_counts,
)
from alignclip_plugins.synthetic.records import sample_members
from alignclip_plugins.synthetic.statistics import (
    STATISTICS_FILE,
    TrainStatistics,
    measure,
    train_plans,
)
from alignclip_plugins.synthetic.writer import (
    Member,
    shard_name,
    tar_is_complete,
    write_tar_atomic,
)

MEMBERS_PER_SAMPLE = 3  # KEY.png, KEY.txt or KEY.cls, KEY.json


@dataclass(frozen=True)
class GenerationReport:
    """What a generation did; ``seconds`` is wall-clock time."""

    manifest: dict
    statistics: TrainStatistics
    shards_written: int
    shards_reused: int
    tail_classes: int
    seconds: float


def _dump(value: object) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False) + "\n"


def _shard_members(
    config: SynthConfig,
    split: str,
    shard: int,
    probabilities: np.ndarray,
    tail: np.ndarray,
    bar: tqdm,
) -> Iterator[Member]:
    rng = shard_rng(config.seed, split, shard, STREAM_RENDER)
    for plan in plan_shard(config, split, shard, probabilities):
        yield from sample_members(plan, config.image_size, tail, rng)
        bar.update(1)


def _write_metadata(out: Path, counts: np.ndarray, tail: np.ndarray, ranks: np.ndarray) -> None:
    atomic_write_text(out / "classnames.txt", "".join(f"{name}\n" for name in CLASS_NAMES))
    classes = {
        "names": list(CLASS_NAMES),
        "train_frequency": [int(c) for c in counts],
        "tail": [bool(t) for t in tail],
        "rank": [int(r) for r in ranks],
    }
    atomic_write_text(out / "classes.json", _dump(classes))
    # what zero-shot top-1 needs both of: the colour and the shape of each class
    parts = [class_parts(i) for i in range(len(CLASS_NAMES))]
    attributes = {"colour": [c for c, _ in parts], "shape": [s for _, s in parts]}
    atomic_write_text(
        out / "attributes.json", _dump({"names": list(CLASS_NAMES), "attributes": attributes})
    )
    atomic_write_text(out / "descriptions.json", _dump(visual_descriptions()))
    atomic_write_text(out / "vocabulary.json", _dump(vocabulary()))


def run_generation(
    out: str | Path, config: SynthConfig, *, overwrite: bool = False, progress: bool = True
) -> GenerationReport:
    """Generate (or resume) the dataset of ``config`` in ``out``; see :func:`generate`."""
    start = time.perf_counter()
    out = Path(out)
    prepare_output(out, config, overwrite)
    ranks = class_ranks(config.seed)
    probabilities = zipf_probabilities(ranks, config.zipf)
    counts = train_counts(config, probabilities)
    tail = tail_mask(counts, ranks, config.tail_fraction)

    written = reused = 0
    total = sum(split_size(config, split) for split in SPLITS)
    with tqdm(total=total, unit="img", desc="synth", disable=not progress) as bar:
        for split in SPLITS:
            for shard in range(num_shards(config, split)):
                path = out / shard_name(split, shard)
                samples = len(shard_range(config, split, shard))
                if path.is_file() and tar_is_complete(path, MEMBERS_PER_SAMPLE * samples):
                    reused += 1
                    bar.update(samples)
                    continue
                members = _shard_members(config, split, shard, probabilities, tail, bar)
                write_tar_atomic(path, members)
                written += 1

    _write_metadata(out, counts, tail, ranks)
    statistics = measure(config, train_plans(config, probabilities), tail, counts)
    atomic_write_text(out / STATISTICS_FILE, _dump(statistics.as_dict()))
    manifest = build_manifest(config)
    write_manifest(out, manifest)
    return GenerationReport(
        manifest=manifest,
        statistics=statistics,
        shards_written=written,
        shards_reused=reused,
        tail_classes=int(tail.sum()),
        seconds=time.perf_counter() - start,
    )


def generate(
    out: str | Path, config: SynthConfig, *, overwrite: bool = False, progress: bool = True
) -> dict:
    """Write the synthetic dataset of ``config`` to directory ``out``; returns its manifest.

    Resumes an interrupted generation (complete shards are kept untouched). Raises
    SyntheticOptionsMismatch when ``out`` holds other data, unless ``overwrite`` replaces it.
    ``progress`` shows a tqdm bar over samples on stderr.
    """
    return run_generation(out, config, overwrite=overwrite, progress=progress).manifest
