"""Reading captions from shards and text files; writing and reading sidecars."""

from __future__ import annotations

import io
import json
import tarfile

import pytest

from alignclip_plugins.objects.captions import (
    ReadStats,
    expand_inputs,
    input_stem,
    iter_captions,
)
from alignclip_plugins.objects.sidecar import (
    load_object_sets,
    read_sidecar,
    sidecar_files,
    sidecar_path,
    write_sidecar,
)


def write_shard(path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_shard_captions_keys_follow_webdataset(tmp_path):
    shard = tmp_path / "train-000003.tar"
    write_shard(
        shard,
        [
            ("__meta__", b"ignored"),
            ("0001.jpg", b"\xff\xd8 not really a jpeg"),
            ("0001.txt", b"  a red circle \n"),
            ("0002.png", b"png bytes"),
            ("0002.TXT", b"a blue square"),
            ("sub/0003.txt", "caf\u00e9 table".encode()),
            ("sub/0003.json", b"{}"),
            ("0004.jpg", b"an image without caption"),
            ("0005.en.txt", b"not the txt member"),
        ],
    )
    stats = ReadStats()
    got = [(c.key, c.text) for c in iter_captions(shard, stats)]
    assert got == [
        ("0001", "a red circle"),
        ("0002", "a blue square"),
        ("sub/0003", "caf\u00e9 table"),
    ]
    assert stats.samples_without_caption == 2  # 0004 and 0005 (whose member is "en.txt")
    import webdataset as wds

    samples = list(wds.WebDataset(str(shard), shardshuffle=False))
    wds_keys = {s["__key__"]: s["txt"].decode().strip() for s in samples if "txt" in s}
    assert wds_keys == dict(got)


def test_undecodable_caption_is_replaced_and_counted(tmp_path):
    shard = tmp_path / "s.tar"
    write_shard(shard, [("k.txt", b"bad \xff byte")])
    stats = ReadStats()
    [caption] = iter_captions(shard, stats)
    assert caption.text == "bad \ufffd byte" and stats.undecodable_captions == 1


def test_duplicate_caption_key_names_shard_and_key(tmp_path):
    shard = tmp_path / "dup.tar"
    write_shard(shard, [("k1.txt", b"a"), ("k2.txt", b"b"), ("k1.txt", b"c")])
    with pytest.raises(ValueError, match=r"dup\.tar: sample key 'k1' has more than one \.txt"):
        list(iter_captions(shard))


def test_corrupt_shard_is_named(tmp_path):
    shard = tmp_path / "broken.tar"
    write_shard(shard, [("k1.txt", b"a" * 5000), ("k2.txt", b"b")])
    shard.write_bytes(shard.read_bytes()[:700])  # truncated download
    with pytest.raises(ValueError, match=r"shard .*broken\.tar is not a readable tar"):
        list(iter_captions(shard))


def test_text_file_keys_are_line_numbers(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_bytes(b"first caption\r\n\nthird one\n")
    assert [(c.key, c.text) for c in iter_captions(path)] == [
        ("1", "first caption"),
        ("2", ""),
        ("3", "third one"),
    ]


def test_expand_inputs_and_stems(tmp_path):
    for i in range(3):
        write_shard(tmp_path / f"train-{i:06d}.tar", [])
    (tmp_path / "notes.md").write_text("x")
    braces = expand_inputs([str(tmp_path / "train-{000000..000001}.tar")])
    assert [p.name for p in braces] == ["train-000000.tar", "train-000001.tar"]
    assert [p.name for p in expand_inputs([str(tmp_path)])] == [
        "train-000000.tar",
        "train-000001.tar",
        "train-000002.tar",
    ]
    with pytest.raises(ValueError, match="missing.tar does not exist"):
        expand_inputs([str(tmp_path / "missing.tar")])
    assert input_stem("a/train-000003.tar") == "train-000003"
    assert input_stem("x.tar.gz") == "x" and input_stem("captions.txt") == "captions"
    assert sidecar_path("OUT", "X/train-000003.tar").as_posix() == "OUT/train-000003.objects.jsonl"


def test_sidecar_round_trip_and_loading(tmp_path):
    a = tmp_path / "a.objects.jsonl"
    b = tmp_path / "b.objects.jsonl"
    assert write_sidecar(a, [("k1", ["red circle"]), ("k2", [])]) == 2
    write_sidecar(b, [("k3", ["caf\u00e9"])])
    assert read_sidecar(a) == {"k1": ["red circle"], "k2": []}
    assert json.loads(a.read_text().splitlines()[0]) == {"key": "k1", "objects": ["red circle"]}
    assert load_object_sets(tmp_path) == {"k1": ["red circle"], "k2": [], "k3": ["caf\u00e9"]}
    assert sidecar_files(tmp_path) == [a, b]
    write_sidecar(b, [("k1", ["x"])])
    with pytest.raises(ValueError, match=r"'k1' is in both .*a\.objects\.jsonl and .*b\.objects"):
        load_object_sets(tmp_path)


def test_bad_sidecar_line_is_named(tmp_path):
    path = tmp_path / "s.objects.jsonl"
    path.write_text('{"key": "1", "objects": []}\n{"key": 2, "objects": []}\n')
    with pytest.raises(ValueError, match=r"s\.objects\.jsonl, line 2"):
        read_sidecar(path)


def test_compressed_shards_are_read(tmp_path):
    for name, mode in (("a.tar.gz", "w:gz"), ("b.tgz", "w:gz"), ("mislabelled.tar", "w:gz")):
        with tarfile.open(tmp_path / name, mode) as tar:
            for key, data in (("k1.jpg", b"img"), ("k1.txt", b"a cat")):
                info = tarfile.TarInfo(key)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        assert [(c.key, c.text) for c in iter_captions(tmp_path / name)] == [("k1", "a cat")]
    assert input_stem(tmp_path / "b.tgz") == "b"
