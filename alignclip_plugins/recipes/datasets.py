"""Training data of a run: the shard list open_clip_train gets and its number of samples.

``data.train_data`` is a directory of ``.tar`` shards, a brace pattern, a glob
(``ROOT/train-*.tar``: the matching shards, sorted) or a ``::``-joined list of them.
``data.num_samples`` is taken as given, else read like upstream does (``sizes.json``,
``__len__``) or from img2dataset's ``*_stats.json`` files, else counted from the shards' tar
headers when ``data.count_samples`` is true (small datasets: Flickr8k). ``data.subset`` < 1 keeps that
fraction of the shards, chosen by a shuffle seeded with ``data.subset_seed`` (the same
shards for every method), with the sample count scaled to them.
"""

from __future__ import annotations

import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from alignclip_plugins.io.shards import (
    compress_urls,
    expand_globs,
    expand_patterns,
    has_glob,
    is_pattern,
    shards_in_directory,
)


class TrainDataError(ValueError):
    """Training data that cannot be found or counted; the message says what to do."""


@dataclass(frozen=True)
class TrainData:
    """``urls``: the ``--train-data`` value; ``num_samples`` None when it cannot be known yet."""

    urls: str
    num_samples: int | None
    num_shards: int | None
    note: str | None = None  # why the command is not exact yet (data not there)


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def shard_sizes(shards: Sequence[str]) -> dict[str, int] | None:
    """Samples per shard from ``sizes.json`` or img2dataset's ``NNNNN_stats.json`` files."""
    if not shards:
        return None
    directory = Path(shards[0]).parent
    sizes = _read_json(directory / "sizes.json")
    if isinstance(sizes, dict):
        try:
            return {s: int(sizes[Path(s).name]) for s in shards}
        except (KeyError, TypeError, ValueError):
            pass
    out = {}
    for shard in shards:
        stats = _read_json(Path(shard).with_name(Path(shard).stem + "_stats.json"))
        if not isinstance(stats, dict) or "successes" not in stats:
            return None
        out[shard] = int(stats["successes"])
    return out


def _total_from_len(shards: Sequence[str]) -> int | None:
    path = Path(shards[0]).parent / "__len__"
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def select_subset(shards: Sequence[str], fraction: float, seed: int) -> list[str]:
    """``ceil(fraction x len(shards))`` shards from a seeded shuffle, in their original order."""
    if not 0 < fraction <= 1:
        raise TrainDataError(f"data.subset must be in (0, 1], got {fraction}")
    if fraction == 1:
        return list(shards)
    keep = max(1, math.ceil(round(fraction * len(shards), 6)))
    order = list(range(len(shards)))
    random.Random(seed).shuffle(order)
    chosen = sorted(order[:keep])
    return [shards[i] for i in chosen]


def resolve_train_data(data: dict, *, must_exist: bool = True) -> TrainData:
    """The ``--train-data`` / ``--train-num-samples`` of a resolved ``data`` config.

    With ``must_exist`` False (dry runs) missing data is not an error: the result carries
    a ``note`` and what can be known without the files.
    """
    spec = expand_globs(str(data["train_data"]))
    configured = data.get("num_samples")
    configured = None if configured in (None, "", "null") else int(configured)
    fraction = float(data.get("subset", 1.0))
    seed = int(data.get("subset_seed", 0))
    label = data.get("label") or data.get("name")

    if has_glob(spec):
        if must_exist:
            raise TrainDataError(f"{label}: no training shards match {spec}")
        return TrainData(spec, configured, None, f"no shards match {spec} yet")
    if os.path.isdir(spec):
        shards = shards_in_directory(spec)
        if not shards:
            raise TrainDataError(f"{label}: no .tar shards in {spec}")
    elif is_pattern(spec) or spec.endswith(".tar"):
        shards = expand_patterns(spec)
    else:
        if must_exist:
            raise TrainDataError(
                f"{label}: training data {spec} does not exist (a shard directory, a brace "
                "pattern like '.../{00000..00331}.tar', or a '::'-joined list)"
            )
        return TrainData(spec, configured, None, f"{spec} does not exist yet")

    missing = [s for s in shards if "://" not in s and not os.path.exists(s)]
    note = None
    if missing:
        if must_exist:
            raise TrainDataError(
                f"{label}: {len(missing)} of {len(shards)} training shards are missing, e.g. "
                f"{missing[0]}"
            )
        note = f"{len(missing)} of {len(shards)} shards do not exist yet"

    chosen = select_subset(shards, fraction, seed)
    num_samples = configured
    if num_samples is None and not missing:
        sizes = shard_sizes(shards)
        if sizes is not None:
            return TrainData(
                compress_urls(chosen), sum(sizes[s] for s in chosen), len(chosen), note
            )
        num_samples = _total_from_len(shards)
        if num_samples is None and data.get("count_samples"):
            from alignclip_plugins.captions.layout import count_samples

            total = sum(count_samples(s) for s in chosen)
            return TrainData(compress_urls(chosen), total, len(chosen), note)
    if num_samples is not None and len(chosen) < len(shards):
        num_samples = round(num_samples * len(chosen) / len(shards))
    if num_samples is None and must_exist:
        raise TrainDataError(
            f"{label}: the number of training samples is unknown: set data.num_samples (or "
            f"{data.get('env_prefix', 'ALIGNCLIP_<DATA>')}_NUM_SAMPLES), or put a sizes.json "
            f"({{shard name: samples}}) or img2dataset's *_stats.json files next to the shards"
        )
    if num_samples is None and note is None:
        note = "the number of samples is unknown until the data exists"
    return TrainData(compress_urls(chosen), num_samples, len(chosen), note)
