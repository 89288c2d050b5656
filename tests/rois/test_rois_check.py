"""`alignclip rois check` and training's reader on damaged ROI sidecars: every fault named."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import torch

from alignclip_plugins.plugins.softclip.stage import RoiSampleStage
from alignclip_plugins.rois import storage as S
from alignclip_plugins.rois.check import check_sidecars, verify_sidecars
from alignclip_plugins.rois.cli import main as rois_main
from alignclip_plugins.synthetic.writer import write_tar_atomic

KEYS = ["000000", "000001", "000002", "000003"]


def _sidecar(tmp_path, name="train-000000", keys=KEYS, rois=2, seed=0):
    """A shard with ``keys`` and its sidecar next to it (``rois`` ROIs per sample)."""
    shard = tmp_path / f"{name}.tar"
    write_tar_atomic(shard, [(f"{k}.txt", b"a caption") for k in keys])
    rng = np.random.default_rng(seed)
    rows = [
        (k, rng.random((rois, S.ROI_DIM)).astype(np.float32), [1.0] * rois, ["red circle"] * rois)
        for k in keys
    ]
    return shard, S.write_sidecar(tmp_path, shard.name, rows, len(rows), max_rois=rois)


def _check(shards, capsys):
    code = rois_main(["check", "--shards", *map(str, shards), "--no-progress"])
    out = capsys.readouterr()
    return code, out.out, out.err


def _corrupt_line(path, number, text):
    lines = (path / "samples.jsonl").read_text().splitlines(keepends=True)
    lines[number - 1] = text
    (path / "samples.jsonl").write_text("".join(lines))


def _poison(path, row, slot=0, value=np.nan):
    features = np.load(path / "features.npy", mmap_mode="r+")
    features[row, slot, 100] = value
    features.flush()
    del features


def test_clean_sidecars_pass(tmp_path, capsys):
    shards = [_sidecar(tmp_path, f"train-00000{i}", seed=i)[0] for i in range(2)]
    code, out, err = _check(shards, capsys)
    assert code == 0, err
    assert "2 shard(s), 8 samples: every ROI sidecar is complete and readable" in out


def test_damaged_samples_line_is_named_by_check_and_by_the_reader(tmp_path, capsys):
    shard, path = _sidecar(tmp_path)
    _corrupt_line(path, 3, '{"key": "000002", "tags": ["red circ\n')  # a cut write
    code, _, err = _check([shard], capsys)  # passed before: only meta.json was read
    assert code == 1
    assert f"{path / 'samples.jsonl'}, line 3: not JSON" in err
    with pytest.raises(S.RoiDataError, match=r"samples\.jsonl, line 3: not JSON") as e:
        S.SidecarReader(path)  # was a bare JSONDecodeError naming no file
    assert str(path) in str(e.value) and "delete" in str(e.value)


def test_truncated_features_are_named_at_start_up_by_check_and_by_the_reader(tmp_path, capsys):
    shard, path = _sidecar(tmp_path)
    data = (path / "features.npy").read_bytes()
    (path / "features.npy").write_bytes(data[: len(data) // 2])  # an interrupted copy
    file = path / "features.npy"
    with pytest.raises(S.RoiDataError, match="truncated or damaged") as e:
        S.SidecarReader(path)  # was "mmap length is greater than file size", naming no file
    assert str(file) in str(e.value)
    with pytest.raises(S.RoiDataError, match="unusable ROI sidecars") as e:
        check_sidecars(None, [str(shard)])  # training's start-up check
    assert str(file) in str(e.value)
    code, _, err = _check([shard], capsys)
    assert code == 1 and f"{file}: truncated or damaged (mmap length" in err


def test_nan_vectors_are_found_by_check_with_row_and_key(tmp_path, capsys):
    shard, path = _sidecar(tmp_path)
    _poison(path, 1)
    _poison(path, 3, slot=1, value=np.inf)
    code, _, err = _check([shard], capsys)  # passed before: vectors were never read
    assert code == 1
    assert "2 fault(s) in 1 of 1 ROI sidecar(s)" in err
    assert f"{path / 'features.npy'}, row 1 (samples.jsonl line 2), key '000001': 1 ROI" in err
    assert "row 3 (samples.jsonl line 4), key '000003'" in err


def test_nan_in_padding_slots_is_not_a_fault(tmp_path, capsys):
    shard, path = _sidecar(tmp_path)
    counts = np.load(path / "counts.npy")
    counts[0] = 1  # sample 0 keeps one ROI: slot 1 is padding, never read
    np.save(path / "counts.npy", counts)
    tags = (path / "samples.jsonl").read_text().splitlines(keepends=True)
    tags[0] = json.dumps({"key": "000000", "tags": ["red circle"]}) + "\n"
    (path / "samples.jsonl").write_text("".join(tags))
    _poison(path, 0, slot=1)
    code, _, err = _check([shard], capsys)
    assert code == 0, err


def test_structure_faults_are_each_named(tmp_path, capsys):
    shard, path = _sidecar(tmp_path)
    _corrupt_line(path, 2, json.dumps({"key": "000000", "tags": ["red circle"] * 2}) + "\n")
    _corrupt_line(path, 4, json.dumps({"key": "000003", "tags": ["red circle"]}) + "\n")
    with open(path / "samples.jsonl", "a") as f:
        f.write(json.dumps({"key": "extra", "tags": []}) + "\n")
    np.save(path / "confidences.npy", np.zeros((3, 2), np.float16))
    code, _, err = _check([shard], capsys)
    assert code == 1
    samples = path / "samples.jsonl"
    assert f"{samples}, line 2, key '000000': repeats line 1" in err
    assert f"{samples}, line 4, key '000003': 1 tags for 2 ROIs (counts.npy)" in err
    assert f"{samples}: 5 lines for 4 samples (meta.json)" in err
    assert f"{path / 'confidences.npy'}: shape (3, 2), expected (4, 2)" in err
    assert "1 sample(s) of shard" in err and "'000001'" in err  # no row: training stops there
    with pytest.raises(S.RoiDataError, match="confidences.npy: shape"):
        S.SidecarReader(path)


def test_missing_and_unreadable_sidecars(tmp_path, capsys):
    shard, path = _sidecar(tmp_path)
    other = tmp_path / "train-000001.tar"
    write_tar_atomic(other, [("k.txt", b"x")])
    (path / "meta.json").write_text("{not json")
    code, _, err = _check([shard, other], capsys)
    assert code == 1
    assert f"{path / 'meta.json'}: unreadable" in err
    assert f"{tmp_path / 'train-000001.rois'}: missing (no meta.json)" in err
    assert "To fix a damaged sidecar, delete its directory and rerun" in err


def test_check_streams_with_a_progress_bar(tmp_path, capsys):
    shard, _ = _sidecar(tmp_path)
    result = verify_sidecars(None, [str(shard)], progress=True)
    assert result.ok and result.samples == 4
    assert "rois check" in capsys.readouterr().err  # tqdm's bar


def test_training_reader_leaves_out_non_finite_rois_counted_with_the_key(tmp_path, caplog):
    shard, path = _sidecar(tmp_path)
    _poison(path, 2)

    class Tokens:
        def __call__(self, texts):
            out = torch.zeros(len(texts), 8, dtype=torch.long)
            out[:, 0], out[:, 1] = 49406, 49407
            return out

    stage = RoiSampleStage(None, 2, Tokens())
    samples = [{"__key__": k, "__url__": str(shard)} for k in KEYS]
    with caplog.at_level(logging.WARNING):
        out = list(stage(iter(samples)))  # raised mid-epoch before
    assert [o["roi_mask"].tolist() for o in out] == [[True, True]] * 2 + [[False, False]] + [
        [True, True]
    ]
    assert torch.isfinite(torch.stack([o["roi_features"].float() for o in out])).all()
    assert not out[2]["roi_features"].any() and out[2]["tag_text"].tolist() == [49406, 49407]
    text = caplog.text
    assert f"sample '000002' of shard {shard.name}" in text and "features.npy, row 2" in text
    assert "1 sample(s) of this pass" in text and "alignclip rois check" in text
    with pytest.raises(S.NonFiniteRois, match="'000002'"):
        S.SidecarReader(path).get("000002")  # the reader itself still refuses them
