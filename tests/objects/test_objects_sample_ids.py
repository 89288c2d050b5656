"""The sample stage attaching image-side object ids from per-shard sidecars."""

import json
import logging
import random
from collections import Counter
from pathlib import Path

import pytest

from alignclip_plugins.objects import sample_objects
from alignclip_plugins.objects.sample_objects import (
    AttachObjectIds,
    SidecarIndex,
    load_shard_objects,
    shard_stem,
    vocabulary_ids,
)
from alignclip_plugins.objects.sidecar import write_sidecar

IDS = vocabulary_ids(["dog", "cat", "frisbee"])


def make_sidecars(root: Path, shards: dict[str, dict[str, list[str]]]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for stem, records in shards.items():
        write_sidecar(root / f"{stem}.objects.jsonl", records.items())
    return root


def samples(shard: str, keys, url_dir="/data/train"):
    return [{"__url__": f"{url_dir}/{shard}.tar", "__key__": k, "text": "t"} for k in keys]


@pytest.mark.parametrize(
    "url, stem",
    [
        ("/data/train/train-000003.tar", "train-000003"),
        ("s3://bucket/cc3m/00017.tar", "00017"),
        ("https://host/x/shard-1.tar.gz?download=1", "shard-1"),
        ("pipe:aws s3 cp s3://bucket/cc3m/00017.tar -", "00017"),
        ("pipe:curl -s -L 'https://host/a/b-000001.tgz'", "b-000001"),
    ],
)
def test_shard_stem(url, stem):
    assert shard_stem(url) == stem


def test_index_over_directories_and_files(tmp_path):
    a = make_sidecars(tmp_path / "a", {"s0": {"k": ["dog"]}, "s1": {"k": ["cat"]}})
    b = make_sidecars(tmp_path / "b", {"s2": {"k": []}})
    index = SidecarIndex.from_option(f"{a},{b / 's2.objects.jsonl'}")
    assert index.path_for("/x/s1.tar") == a / "s1.objects.jsonl"
    assert index.missing(["/x/s0.tar", "/x/s3.tar", "/x/s2.tar"]) == ["/x/s3.tar"]
    make_sidecars(tmp_path / "c", {"s1": {"k": []}})
    with pytest.raises(ValueError, match="two sidecars for shard 's1'"):
        SidecarIndex([a, tmp_path / "c"])
    with pytest.raises(ValueError, match="does not exist"):
        SidecarIndex([tmp_path / "nope"])


def test_shard_objects_map_to_ids_dropping_unknown_objects(tmp_path):
    root = make_sidecars(
        tmp_path, {"s0": {"a": ["frisbee", "dog", "unicorn", "dog"], "b": ["unicorn"], "c": []}}
    )
    dropped = Counter()
    got = load_shard_objects(root / "s0.objects.jsonl", IDS, dropped)
    assert got == {"a": (2, 0), "b": (), "c": ()}
    assert dropped == {"unicorn": 2}


def test_stage_reads_each_sidecar_lazily_one_shard_at_a_time(tmp_path, monkeypatch, caplog):
    root = make_sidecars(
        tmp_path,
        {
            "s0": {"0": ["dog"], "1": ["cat", "dog"]},
            "s1": {"2": ["frisbee"]},  # key "3" has no entry
            "s2": {"4": ["cat"]},
        },
    )
    reads = []
    real = sample_objects.load_shard_objects
    monkeypatch.setattr(
        sample_objects,
        "load_shard_objects",
        lambda path, *a: reads.append(Path(path).name) or real(path, *a),
    )
    stage = AttachObjectIds(SidecarIndex([root]), IDS)
    stream = samples("s0", ["0", "1"]) + samples("s1", ["2", "3"]) + samples("s2", ["4"])
    with caplog.at_level(logging.INFO, logger="alignclip_plugins.objects.sample_objects"):
        it = stage(iter(stream))
        first = next(it)
        assert first["image_objects"] == (0,) and reads == ["s0.objects.jsonl"]
        out = [first, *it]
    assert [s["image_objects"] for s in out] == [(0,), (1, 0), (2,), (), (1,)]
    assert reads == ["s0.objects.jsonl", "s1.objects.jsonl", "s2.objects.jsonl"]
    assert "epoch 0: 5 samples, 1 with an empty object set (1 without a sidecar entry" in (
        caplog.text
    )
    assert caplog.records[-1].levelno == logging.WARNING


def test_stage_cache_is_bounded(tmp_path):
    root = make_sidecars(
        tmp_path, {f"s{i}": {f"{i}-{j}": ["dog"] for j in range(10)} for i in range(4)}
    )
    stage = AttachObjectIds(SidecarIndex([root]), IDS, max_cached_samples=15)
    interleaved = [s for j in range(10) for i in range(4) for s in samples(f"s{i}", [f"{i}-{j}"])]
    out = list(stage(iter(interleaved)))
    assert all(s["image_objects"] == (0,) for s in out)
    assert len(stage._cache) == 1 and stage._cache.samples <= 15  # one 10-sample shard
    assert stage.stats["sidecar_reads"] == 40  # thrashes, but stays correct
    big = AttachObjectIds(SidecarIndex([root]), IDS, max_cached_samples=40)
    list(big(iter(interleaved)))
    assert big.stats["sidecar_reads"] == 4


def test_missing_sidecar_is_an_error_unless_allowed(tmp_path, caplog):
    root = make_sidecars(tmp_path / "objects", {"s0": {"0": ["dog"]}})
    stage = AttachObjectIds(SidecarIndex([root]), IDS)
    with pytest.raises(FileNotFoundError) as e:
        list(stage(iter(samples("s0", ["0"]) + samples("s9", ["1"]))))
    assert "/data/train/s9.tar" in str(e.value)
    assert f"alignclip objects parse '/data/train/s9.tar' --out {root}" in str(e.value)
    lenient = AttachObjectIds(SidecarIndex([root]), IDS, allow_missing=True)
    with caplog.at_level(logging.INFO):
        out = list(lenient(iter(samples("s0", ["0"]) + samples("s9", ["1", "2"]))))
    assert [s["image_objects"] for s in out] == [(0,), (), ()]
    assert "2 in shards without a sidecar" in caplog.text


def test_stage_matches_the_ground_truth_of_real_shards(synth_data, tmp_path):
    """Through a real webdataset pipeline: O_i is exactly the objects the caption names."""
    import webdataset as wds

    from alignclip_plugins.objects.captions import expand_inputs
    from alignclip_plugins.objects.run import parse_inputs
    from alignclip_plugins.objects.stats import (
        build_vocabulary,
        count_objects,
        load_object_vocabulary,
        write_vocabulary,
    )
    from alignclip_plugins.objects.vocabulary import VocabParser

    shards = expand_inputs([str(synth_data / "train")])
    objects = tmp_path / "objects"
    parse_inputs(shards, VocabParser(synth_data / "vocabulary.json"), objects, progress=False)
    write_vocabulary(tmp_path / "v.json", build_vocabulary(count_objects([objects])))
    names = load_object_vocabulary(tmp_path / "v.json").names
    stage = AttachObjectIds(SidecarIndex([objects]), vocabulary_ids(names))
    pipeline = wds.DataPipeline(
        wds.SimpleShardList([str(s) for s in shards]),
        wds.tarfile_to_samples(),
        wds.shuffle(100, rng=random.Random(0)),
        stage,
    )
    n = 0
    for sample in pipeline:
        truth = json.loads(sample["json"])["caption_objects"]
        assert [names[i] for i in sample["image_objects"]] == truth
        n += 1
    assert n == 256 and stage.stats["sidecar_reads"] == len(shards)
