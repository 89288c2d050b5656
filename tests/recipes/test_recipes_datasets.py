"""Training shards and sample counts: directories, patterns, subsets, size files."""

from __future__ import annotations

import json

import pytest

from alignclip_plugins.io.shards import expand_patterns as expand
from alignclip_plugins.recipes.command import steps_per_epoch
from alignclip_plugins.recipes.datasets import (
    TrainDataError,
    resolve_train_data,
    select_subset,
)


def test_subset_is_seeded_ordered_and_the_same_for_every_method():
    shards = [f"s{i:03d}.tar" for i in range(60)]
    sixth = select_subset(shards, 1 / 6, seed=0)
    assert len(sixth) == 10 and sixth == sorted(sixth)
    assert sixth == select_subset(shards, 1 / 6, seed=0)
    assert sixth != select_subset(shards, 1 / 6, seed=1)
    half = select_subset(shards, 0.5, seed=0)
    assert len(half) == 30
    assert select_subset(shards, 1.0, seed=0) == shards
    with pytest.raises(TrainDataError, match="subset"):
        select_subset(shards, 0.0, seed=0)


def _shards(directory, n, sizes=None, stats=None):
    directory.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (directory / f"{i:05d}.tar").write_bytes(b"")
        if stats is not None:
            (directory / f"{i:05d}_stats.json").write_text(json.dumps({"successes": stats[i]}))
    if sizes is not None:
        (directory / "sizes.json").write_text(
            json.dumps({f"{i:05d}.tar": sizes[i] for i in range(n)})
        )


def test_directory_of_shards_with_sizes_or_img2dataset_stats(tmp_path):
    _shards(tmp_path / "a", 6, sizes=[10, 20, 30, 40, 50, 60])
    data = {"name": "a", "train_data": str(tmp_path / "a"), "num_samples": None}
    got = resolve_train_data(data)
    assert got.urls == f"{tmp_path}/a/{{00000..00005}}.tar"
    assert (got.num_samples, got.num_shards) == (210, 6)
    half = resolve_train_data({**data, "subset": 0.5, "subset_seed": 0})
    chosen = expand(half.urls)
    assert len(chosen) == 3
    assert half.num_samples == sum(10 * (int(u[-9:-4]) + 1) for u in chosen)  # exact sizes

    _shards(tmp_path / "b", 3, stats=[7, 8, 9])
    got = resolve_train_data({"name": "b", "train_data": str(tmp_path / "b"), "num_samples": None})
    assert got.num_samples == 24
    # a configured count wins, and a subset scales it
    got = resolve_train_data(
        {"name": "b", "train_data": str(tmp_path / "b"), "num_samples": 300, "subset": 1 / 3}
    )
    assert (got.num_shards, got.num_samples) == (1, 100)


def test_missing_data_and_unknown_counts_are_clear(tmp_path):
    _shards(tmp_path / "c", 2)
    with pytest.raises(TrainDataError, match="number of training samples is unknown"):
        resolve_train_data(
            {"name": "c", "train_data": str(tmp_path / "c"), "num_samples": None, "env_prefix": "X"}
        )
    with pytest.raises(TrainDataError, match="2 of 2 training shards are missing"):
        resolve_train_data({"name": "d", "train_data": "/nope/{0..1}.tar", "num_samples": 5})
    with pytest.raises(TrainDataError, match="does not exist"):
        resolve_train_data({"name": "d", "train_data": "/nope/dir", "num_samples": 5})
    # dry runs: what can be known is returned, with a note
    got = resolve_train_data(
        {"name": "d", "train_data": "/nope/{0..3}.tar", "num_samples": 40}, must_exist=False
    )
    assert got.urls == "/nope/{0..3}.tar" and got.num_samples == 40 and "do not exist" in got.note


def test_steps_per_epoch_is_upstreams():
    # open_clip_train: ceil(N / global batch) batches, rounded up to a multiple of the workers
    assert steps_per_epoch(2901344, 2048, 8) == 1424
    assert steps_per_epoch(256, 32, 1) == 8
    assert steps_per_epoch(100, 32, 0) == 4
