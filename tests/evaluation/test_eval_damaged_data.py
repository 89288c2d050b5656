"""A truncated shard or an undecodable image stops an evaluation with its path and key."""

from __future__ import annotations

import shutil
import tarfile

import pytest

from alignclip_plugins.synthetic.writer import write_tar_atomic


def _copy_zeroshot(synth_data, root):
    root.mkdir()
    for shard in sorted((synth_data / "zeroshot").glob("*.tar")):
        shutil.copy(shard, root / shard.name)
    shutil.copy(synth_data / "classnames.txt", root / "classnames.txt")
    return sorted(root.glob("*.tar"))


def _zeroshot(run_eval, tiny_run, data, workers, out):
    return run_eval(
        "zeroshot", "--checkpoint", tiny_run, "--data", data, "--workers", workers,
        "--templates", "simple", "--batch-size", 8, "--out", out,
    )  # fmt: skip


@pytest.mark.parametrize("workers", [0, 2])
def test_truncated_shard_is_named_without_a_traceback(
    synth_data, tiny_run, tmp_path, run_eval, workers
):
    shards = _copy_zeroshot(synth_data, tmp_path / "data")
    data = shards[1].read_bytes()
    shards[1].write_bytes(data[: len(data) // 2])  # an interrupted download
    code, _, err = _zeroshot(run_eval, tiny_run, tmp_path / "data", workers, tmp_path / "out")
    assert code == 1
    assert f"shard {shards[1]} is not a readable tar file after sample '" in err
    assert "ReadError" in err and "Traceback" not in err and "DataLoader worker" not in err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


@pytest.mark.parametrize("workers", [0, 2])
def test_undecodable_image_is_named_with_its_key(synth_data, tiny_run, tmp_path, run_eval, workers):
    shards = _copy_zeroshot(synth_data, tmp_path / "data")
    with tarfile.open(shards[0]) as tar:
        members = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    broken = next(name for name, _ in members if name.endswith(".png"))
    key = broken[: -len(".png")]
    members = [(n, b"\x89PNG not really" if n == broken else d) for n, d in members]
    write_tar_atomic(shards[0], members)
    code, _, err = _zeroshot(run_eval, tiny_run, tmp_path / "data", workers, tmp_path / "out")
    assert code == 1
    assert f"cannot decode image '{key}' of {shards[0]}" in err
    assert "Traceback" not in err and "DataLoader worker" not in err


def test_undecodable_file_in_class_folders_is_named(synth_data, tiny_run, tmp_path, run_eval):
    root = tmp_path / "folders"
    for i, name in enumerate(("cat", "dog")):
        (root / name).mkdir(parents=True)
        with tarfile.open(sorted((synth_data / "zeroshot").glob("*.tar"))[0]) as tar:
            png = next(m for m in tar.getmembers() if m.name.endswith(".png"))
            (root / name / f"{i}.png").write_bytes(tar.extractfile(png).read())
    (root / "dog" / "broken.png").write_bytes(b"not an image")
    code, _, err = _zeroshot(run_eval, tiny_run, root, 2, tmp_path / "out")
    assert code == 1
    assert f"cannot read image {root / 'dog' / 'broken.png'}" in err and "Traceback" not in err
