"""The structure soft labels address, measured on generated shards: many-to-many pairs,
mismatches, omitted objects, near-duplicate scenes, the long tail (statistics.json)."""

import itertools
import json

import pytest
import webdataset as wds

from alignclip_plugins.synthetic import SynthConfig, generate, split_urls
from alignclip_plugins.synthetic.statistics import STATISTICS_FILE

CONFIG = SynthConfig(
    train_samples=600,
    shard_size=200,
    zeroshot_per_class=1,
    retrieval_samples=8,
    count_weights=(0.3, 0.4, 0.3),
    mention=0.7,
    colour_mention=0.6,
    mismatch=0.15,
    duplicates=0.25,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("stats") / "data"
    generate(root, CONFIG, progress=False)
    samples = list(wds.WebDataset(split_urls(root, "train"), shardshuffle=False).decode())
    return root, {s["__key__"]: s["json"] for s in samples}


def _pairs_sharing(sets: list[set]) -> float:
    shared = sum(bool(a & b) for a, b in itertools.permutations(sets, 2))
    return shared / (len(sets) * (len(sets) - 1))


def test_statistics_match_the_shards(data):
    root, meta = data
    stats = json.loads((root / STATISTICS_FILE).read_text())
    images = [set(m["objects"]) for m in meta.values()]
    named = [set(m["caption_objects"]) for m in meta.values()]
    matched = [m for m in meta.values() if m["matched"]]
    assert stats["samples"] == len(meta) == 600 and stats["pair_samples"] == 600
    assert stats["pairs_sharing_object"] == pytest.approx(_pairs_sharing(images))
    assert stats["pairs_sharing_caption_object"] == pytest.approx(_pairs_sharing(named))
    assert stats["sharing_per_batch"] == pytest.approx(63 * _pairs_sharing(images))
    assert stats["mismatched"] == pytest.approx(1 - len(matched) / 600)
    said = [set(m["caption_objects"]) | set(m["caption_shape_only"]) for m in matched]
    omitting = sum(s < set(m["objects"]) for s, m in zip(said, matched))
    assert stats["omitting"] == pytest.approx(omitting / len(matched))
    shape_only = sum(bool(m["caption_shape_only"]) for m in matched)
    assert shape_only and stats["shape_only"] == pytest.approx(shape_only / len(matched))
    duplicates = [m for m in meta.values() if m["duplicate_of"] is not None]
    assert stats["duplicates"] == pytest.approx(len(duplicates) / 600)
    assert stats["objects_per_image"] == pytest.approx(
        sum(len(m["objects"]) for m in meta.values()) / 600
    )
    classes = json.loads((root / "classes.json").read_text())
    tail = [n for n, t in zip(classes["names"], classes["tail"]) if t]
    assert stats["tail_classes"] == tail and len(tail) == 14
    counts = classes["train_frequency"]
    share = sum(c for c, t in zip(counts, classes["tail"]) if t) / sum(counts)
    assert stats["tail_instances"] == pytest.approx(share)


def test_the_options_shape_the_structure(data):
    """What each option promises, measured: object counts, duplicates repeating an earlier
    scene's objects (with their own rendering and caption), omissions, mismatches."""
    _, meta = data
    counts = [len(m["objects"]) for m in meta.values()]
    for k, weight in enumerate(CONFIG.count_weights, start=1):
        assert counts.count(k) / 600 == pytest.approx(weight, abs=0.07)
    duplicates = {k: m for k, m in meta.items() if m["duplicate_of"] is not None}
    assert len(duplicates) / 600 == pytest.approx(CONFIG.duplicates, abs=0.06)
    for key, m in duplicates.items():
        source = meta[m["duplicate_of"]]
        assert m["duplicate_of"] < key and sorted(m["objects"]) == sorted(source["objects"])
    assert any(m["boxes"] != meta[m["duplicate_of"]]["boxes"] for m in duplicates.values())
    mismatched = sum(not m["matched"] for m in meta.values()) / 600
    assert mismatched == pytest.approx(CONFIG.mismatch, abs=0.05)
    # each class of a multi-class image is named with probability `mention` (one at least)
    multi = [m for m in meta.values() if m["matched"] and len(set(m["objects"])) == 2]
    said = [set(m["caption_objects"]) | set(m["caption_shape_only"]) for m in multi]
    assert sum(len(s) == 2 for s in said) / len(multi) == pytest.approx(CONFIG.mention**2, abs=0.1)
    # ... and each mention names its colour with probability `colour_mention`
    named = sum(len(m["caption_objects"]) for m in multi)
    assert named / sum(map(len, said)) == pytest.approx(CONFIG.colour_mention, abs=0.08)


def test_the_defaults_hold_the_structure_the_demo_relies_on():
    """At the default options every structure is present in measurable amounts."""
    from alignclip_plugins.synthetic.classes import class_ranks, tail_mask, zipf_probabilities
    from alignclip_plugins.synthetic.plan import train_counts
    from alignclip_plugins.synthetic.statistics import measure, train_plans

    config = SynthConfig()
    p = zipf_probabilities(class_ranks(config.seed), config.zipf)
    counts = train_counts(config, p)
    stats = measure(config, train_plans(config, p), tail_mask(counts, class_ranks(0), 0.3), counts)
    assert 0.1 < stats.pairs_sharing_object < 0.4 and stats.sharing_per_batch > 5
    assert stats.pairs_sharing_caption_object > 0.03
    assert 0.05 < stats.mismatched < 0.15 and 0.05 < stats.omitting < 0.2
    assert 0.3 < stats.shape_only < 0.7
    assert 0.05 < stats.duplicates < 0.15 and stats.tail_instances < 0.15
