"""Shard names, shard-list expansion and tar members: one definition for every tool."""

from __future__ import annotations

import io
import tarfile

import pytest

from alignclip_plugins.io import shards as S
from alignclip_plugins.objects import sample_objects
from alignclip_plugins.objects.sidecar import write_sidecar
from alignclip_plugins.rois import storage


def write_tar(path, members, mode="w"):
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, mode) as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    "url, stem",
    [
        ("/data/train/train-000003.tar", "train-000003"),
        ("data/TRAIN-1.TAR", "TRAIN-1"),  # any case of the suffix; the stem keeps its case
        ("x/y.tar.gz", "y"),
        ("x/Y.TGZ", "Y"),
        ("a.b.tar", "a.b"),
        ("s3://bucket/cc3m/00017.tar", "00017"),
        ("https://host/x/shard-1.tar.gz?download=1", "shard-1"),
        ("s3://b/x.tar#frag", "x"),
        ("pipe:aws s3 cp s3://bucket/cc3m/00017.tar -", "00017"),
        ("pipe:curl -s -L 'https://host/a/b-000001.tgz'", "b-000001"),
        ("pipe:cat /d/P-7.TAR.GZ | gunzip", "P-7"),
    ],
)
def test_shard_stem(url, stem):
    assert S.shard_stem(url) == stem


@pytest.mark.parametrize("url", ["/data/train/train-000003", "data/x.zip", "pipe:cat /d/x", ".tar"])
def test_a_url_naming_no_shard_file_is_refused(url):
    with pytest.raises(S.ShardNameError, match="cannot tell the shard name"):
        S.shard_stem(url)


def test_alignclip_and_softclip_find_sidecars_by_the_same_name(tmp_path):
    # `data/TRAIN-1.TAR` was accepted by the alignclip object stage and refused by softclip
    assert sample_objects.shard_stem is S.shard_stem and storage.shard_stem is S.shard_stem
    url = str(tmp_path / "data" / "TRAIN-1.TAR")
    write_sidecar(tmp_path / "objects" / "TRAIN-1.objects.jsonl", [("k", ["dog"])])
    index = sample_objects.SidecarIndex([tmp_path / "objects"])
    assert index.path_for(url) == tmp_path / "objects" / "TRAIN-1.objects.jsonl"
    assert storage.sidecar_path(None, url) == tmp_path / "data" / "TRAIN-1.rois"
    with pytest.raises(ValueError, match="cannot tell the shard name"):
        index.path_for(str(tmp_path / "data" / "TRAIN-1"))
    with pytest.raises(storage.RoiDataError, match="cannot tell the shard name"):
        storage.sidecar_path(None, str(tmp_path / "data" / "TRAIN-1"))


def test_expand_patterns_like_train_data(monkeypatch):
    assert S.expand_patterns("/d/a-{000..002}.tar") == [f"/d/a-00{i}.tar" for i in range(3)]
    assert S.expand_patterns("/d/a-{0..1}.tar::/e/b.tar") == [
        "/d/a-0.tar",
        "/d/a-1.tar",
        "/e/b.tar",
    ]
    assert S.expand_patterns(["/d/{a,b}.tar", "/e/c.tar"]) == ["/d/a.tar", "/d/b.tar", "/e/c.tar"]
    monkeypatch.setenv("WDS_ROOT", "/mnt/data")  # ${ROOT}: webdataset's variables, as upstream
    assert S.expand_patterns("${ROOT}/x-{0..1}.tar") == ["/mnt/data/x-0.tar", "/mnt/data/x-1.tar"]


def test_compress_inverts_expand():
    expand, compress = S.expand_patterns, S.compress_urls
    for spec in (
        "/d/{000000..000331}.tar",
        "/d/a-{00..09}.tar::/e/b-{5..7}.tar",
        "/d/x.tar",
        "/d/{0008..0011}.tar",
    ):
        assert expand(compress(expand(spec))) == expand(spec)
    assert compress(expand("/d/{000..009}.tar")) == "/d/{000..009}.tar"
    assert compress(["/d/001.tar", "/d/003.tar", "/d/004.tar"]) == "/d/001.tar::/d/{003..004}.tar"


def test_globs_become_brace_patterns_of_their_matches(tmp_path):
    for i in (0, 1, 2, 5):
        (tmp_path / f"train-{i:06d}.tar").write_bytes(b"")
    (tmp_path / "val-000000.tar").write_bytes(b"")
    assert S.has_glob(f"{tmp_path}/train-*.tar") and not S.has_glob(f"{tmp_path}/a-{{0..1}}.tar")
    # each '::' source on its own; no match, no glob and remote sources stay as they are
    spec = f"{tmp_path}/train-*.tar::{tmp_path}/none-*.tar::s3://b/x-*.tar::{tmp_path}/v.tar"
    assert S.expand_globs(spec) == (
        f"{tmp_path}/train-{{000000..000002}}.tar::{tmp_path}/train-000005.tar::"
        f"{tmp_path}/none-*.tar::s3://b/x-*.tar::{tmp_path}/v.tar"
    )
    assert S.split_sources("a-{0..1}.tar::b.tar") == ["a-{0..1}.tar", "b.tar"]
    assert S.split_sources("a.tar") == ["a.tar"]
    assert S.is_pattern("a-{0..1}.tar") and S.is_pattern("a.tar::b.tar")
    assert not S.is_pattern("/d/a.tar") and not S.is_pattern("/d/train-*.tar")


def test_the_projects_shard_names():
    assert S.shard_name("train", 3) == "train-000003.tar"
    assert S.shard_pattern("train", 8) == "train-{000000..000007}.tar"
    assert S.expand_patterns(S.shard_pattern("val", 2)) == [
        S.shard_name("val", 0),
        S.shard_name("val", 1),
    ]
    assert S.shard_index("train-000003.tar", "train") == 3
    assert S.shard_index("a.b-000012.tar", "a.b") == 12
    for name in ("train-00003.tar", "train-0000003.tar", "val-000003.tar", "aXb-000001.tar",
                 "train-000003.tar.gz", "train-00000x.tar"):  # fmt: skip
        assert S.shard_index(name, "a.b" if name.startswith("aXb") else "train") is None, name


def test_expand_shards_directories_existence_and_remote_urls(tmp_path):
    for name in ("b.tar", "a.tar", "c.tar.gz", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert S.expand_shards(str(tmp_path)) == [str(tmp_path / "a.tar"), str(tmp_path / "b.tar")]
    assert S.expand_shards(str(tmp_path), directories=S.TAR_SUFFIXES)[-1].endswith("c.tar.gz")
    assert S.expand_shards(f"{tmp_path}/{{a,b}}.tar::s3://bucket/z.tar")[-1] == "s3://bucket/z.tar"
    with pytest.raises(
        FileNotFoundError, match=r"1 of 2 shard\(s\) .* do not exist, e\.g\. .*d\.tar"
    ):
        S.expand_shards(f"{tmp_path}/{{a,d}}.tar")
    assert S.expand_shards(f"{tmp_path}/d.tar", must_exist=False) == [f"{tmp_path}/d.tar"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no shards"):
        S.expand_shards(str(tmp_path / "empty"))


def test_members_and_samples_follow_webdataset_keys(tmp_path):
    path = write_tar(
        tmp_path / "s.tar",
        [
            ("__meta__", b"skipped"),
            ("noext", b"skipped too"),
            ("dir/k1.jpg", b"image"),
            ("dir/k1.TXT", b"a cat"),
            ("dir/k1.seg.png", b"mask"),
            ("k2.txt", b"a dog"),
        ],
    )
    assert list(S.iter_members(path, ("txt",))) == [
        ("dir/k1", "jpg", None),
        ("dir/k1", "txt", b"a cat"),
        ("dir/k1", "seg.png", None),
        ("k2", "txt", b"a dog"),
    ]
    assert list(S.iter_samples(path, ("jpg", "txt"))) == [
        ("dir/k1", {"jpg": b"image", "txt": b"a cat"}),
        ("k2", {"txt": b"a dog"}),
    ]
    assert S.shard_keys(path) == ["dir/k1", "k2"]
    gz = write_tar(tmp_path / "s.tar.gz", [("k.txt", b"x")], mode="w:gz")
    assert list(S.iter_samples(gz, ("txt",))) == [("k", {"txt": b"x"})]
    split = write_tar(tmp_path / "split.tar", [("a.txt", b"1"), ("b.txt", b"2"), ("a.jpg", b"3")])
    with pytest.raises(ValueError, match="members of sample 'a' are not contiguous"):
        list(S.iter_samples(split))


def test_truncated_shard_names_the_shard_and_the_last_key(tmp_path):
    path = write_tar(tmp_path / "t.tar", [(f"k{i}.txt", b"x" * 3000) for i in range(4)])
    path.write_bytes(path.read_bytes()[:6000])  # an interrupted download
    with pytest.raises(
        S.ShardReadError, match=r"shard .*t\.tar is not a readable tar file after sample 'k0'"
    ):
        list(S.iter_members(path, ("txt",)))
    (tmp_path / "junk.tar").write_bytes(b"not a tar at all" * 100)
    with pytest.raises(S.ShardReadError, match="junk.tar is not a readable tar file .*re-download"):
        list(S.iter_samples(tmp_path / "junk.tar"))
