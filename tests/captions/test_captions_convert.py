"""``alignclip captions convert``: annotation formats, splits, resize, resume, bad input."""

import io
import json
import tarfile

import pytest
from PIL import Image

from alignclip_plugins.captions import cli
from alignclip_plugins.captions.convert import (
    CONFIG_FILE,
    SUMMARY_FILE,
    ImageOptions,
    convert,
    plan_splits,
    resize,
    sample_key,
)
from alignclip_plugins.captions.layout import count_samples, read_sizes, split_shards
from alignclip_plugins.captions.sources import detect_format, read_annotations, read_split_list


def members(shard) -> dict[str, bytes]:
    with tarfile.open(shard) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


@pytest.fixture
def folder(tmp_path):
    """Kaggle's layout: Images/ and captions.txt (a quoted caption with commas, an unquoted
    one, an image without a file, an image with only an empty caption)."""
    images = tmp_path / "kaggle" / "Images"
    images.mkdir(parents=True)
    for i, name in enumerate(["10_a.jpg", "11_b.jpg", "12.c.jpg", "13_d.jpg", "14_e.jpg"]):
        Image.new("RGB", (40 + 10 * i, 30), (50 * i, 80, 120)).save(images / name, quality=95)
    (images / "14_e.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    rows = ["image,caption"]
    rows += [f"10_a.jpg,a dog {i} ." for i in range(5)]
    rows += ['11_b.jpg,"a cat, a hat and a bat"', "11_b.jpg,two cats, sitting"]
    rows += ["12.c.jpg,a dotted name"]
    rows += ["13_d.jpg,unreadable? no, fine", "14_e.jpg,broken file"]
    rows += ["99_missing.jpg,no file", "15_empty.jpg,"]
    (tmp_path / "kaggle" / "captions.txt").write_text("\n".join(rows) + "\n")
    Image.new("RGB", (8, 8)).save(images / "15_empty.jpg")
    return tmp_path / "kaggle"


def test_annotation_formats(tmp_path, folder):
    kaggle = read_annotations(folder / "captions.txt")
    assert kaggle.format == "csv"
    assert kaggle.captions["11_b.jpg"] == ["a cat, a hat and a bat", "two cats, sitting"]
    assert len(kaggle.captions["10_a.jpg"]) == 5 and kaggle.captions["15_empty.jpg"] == []
    assert kaggle.empty_captions == 1 and kaggle.num_captions == 11
    token = tmp_path / "Flickr8k.token.txt"
    token.write_text("1_a.jpg#0\tA dog .\n1_a.jpg#1\tA  brown dog .\n2_b.jpg#0\tA cat\n")
    assert read_annotations(token).captions == {"1_a.jpg": ["A dog .", "A brown dog ."],
                                                "2_b.jpg": ["A cat"]}  # fmt: skip
    pipe = tmp_path / "results.csv"
    pipe.write_text("image_name| comment_number| comment\n1.jpg| 0| A man | waving\n1.jpg| 1\n")
    parsed = read_annotations(pipe)
    assert parsed.captions == {"1.jpg": ["A man | waving"]} and len(parsed.bad_lines) == 1
    with pytest.raises(ValueError, match="unknown caption file format"):
        detect_format("just some text")
    lst = tmp_path / "train.txt"
    lst.write_text("10_a.jpg\n11_b.jpg\n\n10_a.jpg\n")
    assert read_split_list(lst) == ["10_a.jpg", "11_b.jpg"]
    assert read_split_list(folder / "captions.txt")[:2] == ["10_a.jpg", "11_b.jpg"]


def test_convert_writes_flickr8k_layout_and_reports_what_was_left_out(tmp_path, folder):
    annotations = read_annotations(folder / "captions.txt")
    plan = plan_splits(
        annotations, folder / "Images", {"train": ["10_a.jpg", "11_b.jpg", "14_e.jpg",
                                                   "nope.jpg"], "val": ["12.c.jpg"]},
    )  # fmt: skip
    assert plan.missing_images == ["99_missing.jpg"] and plan.without_captions == ["15_empty.jpg"]
    assert plan.listed_without_annotation == ["nope.jpg"] and plan.not_in_a_split == 1  # 13_d
    out = tmp_path / "shards"
    summary = convert(plan, out, shard_size=2, progress=False)
    assert [p.name for p in split_shards(out, "train")] == ["train-000000.tar", "train-000001.tar"]
    first = members(out / "train-000000.tar")
    assert list(first) == ["10_a.jpg", "10_a.txt", "11_b.jpg", "11_b.txt"]
    assert first["10_a.jpg"] == (folder / "Images" / "10_a.jpg").read_bytes()  # copied as is
    assert first["11_b.txt"].decode() == "a cat, a hat and a bat\ntwo cats, sitting\n"
    assert members(out / "train-000001.tar") == {}  # 14_e: unreadable, left out
    assert list(members(out / "val-000000.tar")) == ["12_c.jpg", "12_c.txt"]
    assert read_sizes(out) == {"train-000000.tar": 2, "train-000001.tar": 0, "val-000000.tar": 1}
    assert count_samples(out / "train-000000.tar") == 2
    assert summary["splits"]["train"]["captions_per_image"] == {"2": 1, "5": 1}
    assert summary["unreadable_images"] == 1 and summary["renamed_keys"] == 1
    assert summary["examples"]["unreadable_images"][0].startswith("14_e.jpg: ")
    assert json.loads((out / SUMMARY_FILE).read_text())["missing_images"] == 1


def test_rerun_resumes_and_other_options_are_refused(tmp_path, folder):
    annotations = read_annotations(folder / "captions.txt")
    plan = plan_splits(annotations, folder / "Images", val_size=0.4, seed=1)
    # 5 planned (14_e's broken file is found when its shard is written)
    assert [len(s) for s in plan.splits.values()] == [3, 2]
    out = tmp_path / "shards"
    convert(plan, out, shard_size=1, progress=False)
    (out / "train-000001.tar").unlink()  # as if killed before writing it
    (out / ".train-000002.tar.999999.x.tmp").write_text("partial")  # a dead writer's leftover
    stamp = (out / "train-000000.tar").stat().st_mtime_ns
    again = convert(plan, out, shard_size=1, progress=False)
    assert again["shards_written"] == 1 and again["shards_reused"] == 4
    assert (out / "train-000000.tar").stat().st_mtime_ns == stamp
    assert not list(out.glob(".*.tmp"))
    with pytest.raises(ValueError, match="made from other inputs or options.*shard_size"):
        convert(plan, out, shard_size=2, progress=False)
    other = plan_splits(annotations, folder / "Images", val_size=0.4, seed=2)
    with pytest.raises(ValueError, match="differences: splits"):
        convert(other, out, shard_size=1, progress=False)
    convert(other, out, shard_size=2, overwrite=True, progress=False)
    assert json.loads((out / CONFIG_FILE).read_text())["shard_size"] == 2
    assert [p.name for p in split_shards(out, "train")] == ["train-000000.tar", "train-000001.tar"]


def test_resize_modes_and_reencoding(tmp_path, folder):
    image = Image.new("RGB", (120, 60))
    assert resize(image, 30, "keep_ratio").size == (60, 30)
    assert resize(image, 30, "center_crop").size == (30, 30)
    assert resize(image, 30, "squash").size == (30, 30)
    plan = plan_splits(read_annotations(folder / "captions.txt"), folder / "Images")
    convert(plan, tmp_path / "o", ImageOptions(24, "center_crop", 80), progress=False)
    data = members(tmp_path / "o" / "train-000000.tar")
    assert Image.open(io.BytesIO(data["11_b.jpg"])).size == (24, 24)
    with pytest.raises(ValueError, match="--resize-mode"):
        ImageOptions(24, "stretch")
    assert sample_key("a.b.c.jpg") == "a_b_c"


def test_cli_kaggle_and_clip_benchmark_layouts(tmp_path, folder, capsys):
    out = tmp_path / "shards"
    code = cli.main(["convert", str(folder), "--out", str(out), "--val-size", "1", "--no-progress"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "train: 3 images" in printed and "val: 1 images" in printed
    assert "missing images: 1 (e.g. 99_missing.jpg)" in printed
    # clip_benchmark: the images in ROOT, flickr8k_<split>_karpathy.txt as splits and captions
    cb = tmp_path / "clip_benchmark"
    cb.mkdir()
    for name in ("10_a.jpg", "11_b.jpg", "13_d.jpg"):
        (cb / name).write_bytes((folder / "Images" / name).read_bytes())
    for split, names in (("train", ["10_a.jpg", "11_b.jpg"]), ("val", ["13_d.jpg"]), ("test", [])):
        lines = ["image,caption", *(f"{n},a caption of {n}" for n in names)]
        (cb / f"flickr8k_{split}_karpathy.txt").write_text("\n".join(lines) + "\n")
    assert cli.main(["convert", str(cb), "--out", str(tmp_path / "cb"), "--no-progress"]) == 0
    assert "splits: clip_benchmark's" in capsys.readouterr().out
    assert read_sizes(tmp_path / "cb") == {"train-000000.tar": 2, "val-000000.tar": 1}
    assert cli.main(["convert", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert cli.main(["convert", str(folder), "--out", str(out), "--split", "train"]) == 2
    assert "write it as NAME=FILE" in capsys.readouterr().err
    assert cli.main(["convert", str(folder), "--out", str(out), "--images", str(tmp_path)]) == 2
    assert "check --images" in capsys.readouterr().err


def test_layout_names_and_counts(tmp_path):
    for name in ("train-000001.tar", "train-000000.tar", "train-1.tar", "val-000000.tar"):
        with tarfile.open(tmp_path / name, "w") as tar:
            for member, data in (("a.jpg", b"i"), ("a.txt", b"x\ny"), ("b.TXT", b"z")):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    (tmp_path / "train-000002.tar").mkdir()  # not a file
    assert [p.name for p in split_shards(tmp_path, "train")] == [
        "train-000000.tar",
        "train-000001.tar",
    ]
    assert split_shards(tmp_path / "absent", "train") == []
    assert count_samples(tmp_path / "train-000000.tar") == 2  # a.txt, b.TXT
    damaged = tmp_path / "damaged.tar"
    damaged.write_bytes((tmp_path / "val-000000.tar").read_bytes()[:700])
    with pytest.raises(ValueError, match=r"shard .*damaged\.tar is not a readable tar file"):
        count_samples(damaged)
