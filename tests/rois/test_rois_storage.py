"""ROI sidecars: round trip, memory mapping, top-K, atomic writes and clear errors."""

import json

import numpy as np
import pytest

from alignclip_plugins.rois import storage as S
from alignclip_plugins.rois.check import check_sidecars


def _record(rng, n, dim=S.ROI_DIM):
    feats = rng.standard_normal((n, dim)).astype(np.float32)
    conf = rng.random(n)
    tags = [f"attr{i} thing{i}" for i in range(n)]
    return feats, conf, tags


def _write(tmp_path, samples, k=3, shard="train-000007.tar", dim=S.ROI_DIM):
    return S.write_sidecar(tmp_path, shard, samples, len(samples), max_rois=k, dim=dim)


def test_round_trip_keeps_the_most_confident_first_in_float16(tmp_path):
    rng = np.random.default_rng(0)
    a = _record(rng, 5)
    b = _record(rng, 2)
    path = _write(tmp_path, [("k0", *a), ("k1", *b), ("k2", np.zeros((0, S.ROI_DIM)), [], [])])
    assert path == tmp_path / "train-000007.rois" and S.is_complete(path)
    reader = S.SidecarReader(path)
    assert isinstance(reader.features, np.memmap)  # memory-mapped, not loaded
    assert reader.features.dtype == np.float16 and reader.features.shape == (3, 3, S.ROI_DIM)
    got = reader.get("k0")
    order = np.argsort(-a[1], kind="stable")[:3]
    np.testing.assert_array_equal(got.features, a[0][order].astype(np.float16))
    np.testing.assert_allclose(got.confidences, a[1][order], rtol=1e-3)
    assert got.tags == [a[2][i] for i in order]
    assert got.tag_sentence == ", ".join(got.tags)
    assert reader.get("k0", max_rois=1).features.shape == (1, S.ROI_DIM)
    assert reader.get("k1").tags == [b[2][i] for i in np.argsort(-b[1], kind="stable")]
    empty = reader.get("k2")
    assert empty.features.shape == (0, S.ROI_DIM) and empty.tags == []
    meta = json.loads((path / "meta.json").read_text())
    assert meta["samples_without_rois"] == 1 and meta["max_rois"] == 3
    with pytest.raises(S.RoiDataError, match="'nope' of shard train-000007.tar"):
        reader.get("nope")


def test_reading_a_sample_touches_only_its_rows(tmp_path, monkeypatch):
    rng = np.random.default_rng(1)
    samples = [(f"k{i}", *_record(rng, 2)) for i in range(50)]
    reader = S.SidecarReader(_write(tmp_path, samples, k=2))
    loads = []
    real = np.load
    monkeypatch.setattr(np, "load", lambda *a, **kw: loads.append(kw) or real(*a, **kw))
    feats = reader.get("k31").features
    assert loads == []  # nothing re-read
    assert feats.flags.owndata and feats.nbytes == 2 * S.ROI_DIM * 2
    np.testing.assert_array_equal(feats, samples[31][1][np.argsort(-samples[31][2])].astype("f2"))


def test_interrupted_writer_leaves_nothing_and_check_names_missing_shards(tmp_path):
    rng = np.random.default_rng(2)
    with pytest.raises(S.RoiDataError, match="NaN or inf"):
        with S.SidecarWriter(tmp_path, "a-000000.tar", 2) as w:
            w.add("x", *_record(rng, 2))
            bad = _record(rng, 1)
            bad[0][0, 5] = np.nan
            w.add("y", *bad)
    assert not any(tmp_path.iterdir())  # no sidecar, no temporary
    with pytest.raises(S.RoiDataError, match="overflow float16"):
        with S.SidecarWriter(tmp_path, "a-000000.tar", 1) as w:
            w.add("x", np.full((1, S.ROI_DIM), 1e6), [1.0], ["big"])
    _write(tmp_path, [("x", *_record(rng, 1))], shard="a-000000.tar")
    urls = [str(tmp_path / "shards" / f"a-00000{i}.tar") for i in range(3)]
    with pytest.raises(S.RoiDataError) as err:
        check_sidecars(tmp_path, urls)
    message = str(err.value)
    assert "2 of 3 shard(s) have no ROI sidecar" in message
    assert "a-000001.tar" in message and "a-000002.tar" in message
    assert "alignclip rois oracle" in message and "convert-vinvl" in message
    assert check_sidecars(tmp_path, urls[:1]) == [tmp_path / "a-000000.rois"]


def test_wrong_feature_size_and_nan_on_disk_are_named(tmp_path):
    rng = np.random.default_rng(3)
    _write(tmp_path, [("x", *_record(rng, 2, dim=2048))], shard="b-000000.tar", dim=2048)
    with pytest.raises(S.RoiDataError, match="b-000000.rois: vectors of size 2048, expected 2052"):
        check_sidecars(tmp_path, ["b-000000.tar"])
    with pytest.raises(S.RoiDataError, match="size 2048, expected 2052"):
        S.SidecarReader(tmp_path / "b-000000.rois")
    path = _write(tmp_path, [("k", *_record(rng, 2)), ("j", *_record(rng, 1))], shard="c.tar")
    mm = np.load(path / "features.npy", mmap_mode="r+")
    mm[1, 0, 7] = np.inf  # corrupted after writing
    mm.flush()
    del mm
    reader = S.SidecarReader(path)
    reader.get("k")
    with pytest.raises(S.RoiDataError, match=r"sample 'j' of shard c.tar: 1 ROI vector\(s\)"):
        reader.get("j")


def test_shard_names_and_default_location():
    assert S.shard_stem("/d/train-000003.tar") == "train-000003"
    assert S.shard_stem("pipe:aws s3 cp s3://b/cc3m/00012.tar -") == "00012"
    assert S.shard_stem("x/y.tar.gz") == "y"
    assert S.sidecar_path(None, "/d/s/t-1.tar") == S.Path("/d/s/t-1.rois")
    with pytest.raises(S.RoiDataError, match="--softclip-rois"):
        S.sidecar_path(None, "pipe:curl http://x/t-1.tar")
