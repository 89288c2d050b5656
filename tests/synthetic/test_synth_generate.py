"""End to end: the dataset directory, its webdataset shards, determinism, resume, errors, CLI."""

import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import webdataset as wds

from alignclip_plugins.synthetic import (
    SynthConfig,
    SyntheticDataMissing,
    SyntheticOptionsMismatch,
    generate,
    load_manifest,
    split_urls,
)
from alignclip_plugins.synthetic import generation as generation
from alignclip_plugins.synthetic.classes import CLASS_NAMES, RGB, class_parts, vocabulary
from alignclip_plugins.synthetic.cli import main
from alignclip_plugins.synthetic.descriptions import visual_descriptions
from alignclip_plugins.synthetic.manifest import FORMAT

SMALL = SynthConfig(train_samples=64, shard_size=16, zeroshot_per_class=1, retrieval_samples=20)


def files(root: Path) -> dict[str, bytes]:
    """{relative path: content} of every file under ``root``."""
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def read_split(root: Path, split: str) -> list[dict]:
    dataset = wds.WebDataset(split_urls(root, split), shardshuffle=False).decode("pil")
    return list(dataset)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("synth") / "data"
    generate(root, SMALL, progress=False)
    return root


def test_layout_and_manifest(dataset):
    expected = {
        *[f"train/train-{i:06d}.tar" for i in range(4)],
        "retrieval/retrieval-000000.tar",
        "retrieval/retrieval-000001.tar",
        *[f"zeroshot/zeroshot-{i:06d}.tar" for i in range(3)],
        "classnames.txt",
        "classes.json",
        "attributes.json",
        "descriptions.json",
        "vocabulary.json",
        "statistics.json",
        "manifest.json",
        ".options.json",
    }
    assert set(files(dataset)) == expected
    manifest = load_manifest(dataset)
    assert manifest == json.loads((dataset / "manifest.json").read_text())
    assert manifest["format"] == FORMAT and manifest["seed"] == 0
    assert manifest["options"] == SMALL.options()
    assert manifest["splits"] == {
        "train": {
            "pattern": "train/train-{000000..000003}.tar",
            "num_samples": 64,
            "num_shards": 4,
        },
        "retrieval": {
            "pattern": "retrieval/retrieval-{000000..000001}.tar",
            "num_samples": 20,
            "num_shards": 2,
        },
        "zeroshot": {
            "pattern": "zeroshot/zeroshot-{000000..000002}.tar",
            "num_samples": 48,
            "num_shards": 3,
        },
    }
    assert SynthConfig.from_record(manifest["seed"], manifest["options"]) == SMALL


def test_metadata_files(dataset):
    assert (dataset / "classnames.txt").read_text().splitlines() == list(CLASS_NAMES)
    assert json.loads((dataset / "vocabulary.json").read_text()) == vocabulary()
    assert json.loads((dataset / "descriptions.json").read_text()) == visual_descriptions()
    classes = json.loads((dataset / "classes.json").read_text())
    assert classes["names"] == list(CLASS_NAMES)
    freq, tail = np.array(classes["train_frequency"]), np.array(classes["tail"])
    assert freq.shape == tail.shape == (48,)
    assert tail.sum() == 14  # round(0.3 * 48)
    assert freq[tail].max() <= freq[~tail].min()


def check_objects(sample: dict) -> None:
    """Ground truth fields are consistent and every object is drawn inside its box."""
    meta, image = sample["json"], np.asarray(sample["png"])
    assert image.shape == (64, 64, 3) and meta["image_size"] == [64, 64]
    assert meta["tags"] == meta["objects"] and len(meta["boxes"]) == len(meta["objects"])
    for name, (x1, y1, x2, y2) in zip(meta["objects"], meta["boxes"]):
        assert 0 <= x1 < x2 <= 64 and 0 <= y1 < y2 <= 64
        colour = RGB[class_parts(CLASS_NAMES.index(name))[0]]
        near = np.abs(image[y1:y2, x1:x2].astype(int) - colour).max(axis=2) <= 30
        assert near.mean() > 0.25, (sample["__key__"], name)


def test_train_and_retrieval_shards_read_with_webdataset(dataset):
    for split, n in (("train", 64), ("retrieval", 20)):
        samples = read_split(dataset, split)
        assert [s["__key__"] for s in samples] == [f"{i:08d}" for i in range(n)]
        for s in samples:
            assert set(s) >= {"png", "txt", "json"} and isinstance(s["txt"], str) and s["txt"]
            assert set(s["json"]) == {
                "objects",
                "boxes",
                "tags",
                "matched",
                "caption_objects",
                "caption_shape_only",
                "duplicate_of",
                "image_size",
            }
            check_objects(s)
            objects, mentioned = set(s["json"]["objects"]), set(s["json"]["caption_objects"])
            shape_only = set(s["json"]["caption_shape_only"])
            assert (mentioned | shape_only) and not mentioned & shape_only
            if s["json"]["matched"]:
                assert mentioned | shape_only <= objects
            if split == "retrieval":
                assert s["json"]["matched"] and mentioned == objects


def test_zeroshot_shards_are_balanced_and_labelled(dataset):
    samples = read_split(dataset, "zeroshot")
    tail = json.loads((dataset / "classes.json").read_text())["tail"]
    assert Counter(s["cls"] for s in samples) == {c: 1 for c in range(48)}
    for s in samples:
        meta = s["json"]
        assert set(s) >= {"png", "cls", "json"} and "txt" not in s
        assert meta["label"] == s["cls"] and meta["class"] == CLASS_NAMES[s["cls"]]
        assert meta["objects"] == [meta["class"]] and meta["tail"] == tail[s["cls"]]
        check_objects(s)


def test_same_seed_and_options_give_byte_identical_files(dataset, tmp_path):
    generate(tmp_path / "again", SMALL, progress=False)
    assert files(tmp_path / "again") == files(dataset)
    generate(tmp_path / "seed1", SynthConfig(**{**SMALL.options(), "seed": 1}), progress=False)
    other = files(tmp_path / "seed1")
    assert other["train/train-000000.tar"] != files(dataset)["train/train-000000.tar"]


def test_rerun_regenerates_a_deleted_shard_and_leaves_the_others_untouched(dataset, tmp_path):
    root = tmp_path / "data"
    generate(root, SMALL, progress=False)
    shards = sorted(root.glob("*/*.tar"))
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in shards}
    victim = root / "train" / "train-000002.tar"
    victim.unlink()
    with pytest.raises(SyntheticDataMissing, match=r"incomplete.*alignclip synth --out"):
        load_manifest(root)
    generate(root, SMALL, progress=False)
    assert files(root) == files(dataset)
    for p in shards:
        if p != victim:
            assert (p.stat().st_ino, p.stat().st_mtime_ns) == before[p], p


def test_interrupted_generation_resumes_to_identical_data(dataset, tmp_path, monkeypatch):
    real, calls = generation.sample_members, {"n": 0}

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 40:  # dies in the third training shard
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    root = tmp_path / "data"
    monkeypatch.setattr(generation, "sample_members", failing)
    with pytest.raises(KeyboardInterrupt):
        generate(root, SMALL, progress=False)
    assert not list(root.rglob("*.tmp")) and not (root / "manifest.json").exists()
    assert len(list(root.glob("train/*.tar"))) == 2
    with pytest.raises(
        SyntheticDataMissing, match="did not finish.*alignclip synth --out .* --train-samples 64"
    ):
        load_manifest(root)
    monkeypatch.setattr(generation, "sample_members", real)
    generate(root, SMALL, progress=False)
    assert files(root) == files(dataset)


def test_other_options_in_out_are_refused_unless_overwrite(tmp_path):
    root = tmp_path / "data"
    generate(root, SMALL, progress=False)
    changed = SynthConfig(**{**SMALL.options(), "seed": 5, "shard_size": 8})
    with pytest.raises(
        SyntheticOptionsMismatch,
        match=r"other options \(seed 0 there vs 5 now, shard_size 16 there vs 8 now\).*--out.*--overwrite",
    ):
        generate(root, changed, progress=False)
    assert load_manifest(root)["seed"] == 0  # refused before touching anything
    manifest = generate(root, changed, overwrite=True, progress=False)
    assert manifest["seed"] == 5 and load_manifest(root) == manifest
    assert len(list(root.glob("train/*.tar"))) == 8  # no stale shards of the old layout


def test_foreign_directory_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(SyntheticOptionsMismatch, match="holds no synthetic dataset"):
        generate(tmp_path, SMALL, progress=False)
    with pytest.raises(SyntheticOptionsMismatch, match="not a directory"):
        generate(tmp_path / "notes.txt", SMALL, progress=False)


def test_load_manifest_of_missing_data_names_the_directory_and_the_command(tmp_path):
    with pytest.raises(SyntheticDataMissing) as error:
        load_manifest(tmp_path / "nowhere")
    message = str(error.value)
    assert (
        str(tmp_path / "nowhere") in message
        and f"alignclip synth --out {tmp_path / 'nowhere'}" in message
    )
    assert isinstance(error.value, FileNotFoundError)


def test_cli_generates_resumes_and_summarises(tmp_path, capsys):
    argv = ["--out", str(tmp_path / "d"), "--train-samples", "20", "--shard-size", "16"]
    argv += ["--zeroshot-per-class", "1", "--retrieval-samples", "4", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "train" in out and "20 samples in 2 shard(s)" in out
    assert "48 classes, 14 tail" in out and "written 6, reused 0" in out
    assert main(argv) == 0
    assert "written 0, reused 6" in capsys.readouterr().out
    assert main([*argv, "--seed", "3"]) == 1
    assert "--overwrite" in capsys.readouterr().err
