"""Sample plans: split sizes, per-shard determinism, mismatches, balanced zero-shot labels."""

from collections import Counter

import numpy as np
import pytest

from alignclip_plugins.synthetic.classes import CLASS_NAMES, class_ranks, zipf_probabilities
from alignclip_plugins.synthetic.config import SynthConfig
from alignclip_plugins.synthetic.plan import (
    num_shards,
    plan_shard,
    shard_range,
    split_size,
    train_counts,
)

CONFIG = SynthConfig(train_samples=50, shard_size=16, zeroshot_per_class=2, retrieval_samples=20)
P = zipf_probabilities(class_ranks(0), 1.0)


def test_split_sizes_and_shards():
    assert [split_size(CONFIG, s) for s in ("train", "retrieval", "zeroshot")] == [50, 20, 96]
    assert [num_shards(CONFIG, s) for s in ("train", "retrieval", "zeroshot")] == [4, 2, 6]
    assert shard_range(CONFIG, "train", 3) == range(48, 50)
    with pytest.raises(ValueError, match="train has 4 shards, no shard 4"):
        shard_range(CONFIG, "train", 4)
    with pytest.raises(ValueError, match="unknown split"):
        split_size(CONFIG, "val")


def test_keys_are_unique_zero_padded_indices():
    keys = [p.key for s in range(4) for p in plan_shard(CONFIG, "train", s, P)]
    assert keys == [f"{i:08d}" for i in range(50)]


def test_a_shard_depends_only_on_seed_split_and_index():
    bigger = SynthConfig(train_samples=500, shard_size=16)
    assert plan_shard(CONFIG, "train", 1, P) == plan_shard(bigger, "train", 1, P)
    assert plan_shard(CONFIG, "train", 1, P) != plan_shard(CONFIG, "train", 2, P)
    other_seed = SynthConfig(seed=1, train_samples=50, shard_size=16)
    assert plan_shard(CONFIG, "train", 1, P) != plan_shard(other_seed, "train", 1, P)


def test_train_counts_match_the_plans():
    counts = np.zeros(48, dtype=int)
    for shard in range(4):
        for plan in plan_shard(CONFIG, "train", shard, P):
            assert 1 <= len(plan.class_ids) <= 4 and len(plan.boxes) == len(plan.class_ids)
            for c in plan.class_ids:
                counts[c] += 1
    assert np.array_equal(counts, train_counts(CONFIG, P))


@pytest.mark.parametrize("mismatch", [0.0, 0.1, 1.0])
def test_mismatched_fraction_and_matched_captions_mention_present_objects(mismatch):
    config = SynthConfig(train_samples=2000, shard_size=2000, mismatch=mismatch)
    plans = plan_shard(config, "train", 0, P)
    unmatched = sum(not p.matched for p in plans) / len(plans)
    assert unmatched == pytest.approx(mismatch, abs=0.025)
    for p in plans:
        if p.matched:
            assert set(p.caption.objects) <= {CLASS_NAMES[c] for c in p.class_ids}
    if mismatch:  # mismatched captions are other images' captions: some name absent objects
        assert any(
            not set(p.caption.objects) <= {CLASS_NAMES[c] for c in p.class_ids}
            for p in plans
            if not p.matched
        )


def test_retrieval_captions_are_clean_and_exhaustive():
    for shard in range(2):
        for p in plan_shard(CONFIG, "retrieval", shard, P):
            assert p.matched and set(p.caption.objects) == {CLASS_NAMES[c] for c in p.class_ids}


def test_zeroshot_is_balanced_with_one_object_per_image():
    plans = [p for s in range(6) for p in plan_shard(CONFIG, "zeroshot", s, P)]
    assert all(len(p.class_ids) == 1 and p.label == p.class_ids[0] for p in plans)
    assert Counter(p.label for p in plans) == {c: 2 for c in range(48)}
    assert all(p.caption is None for p in plans)
