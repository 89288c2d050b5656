"""Shard files: deterministic tars, no partial file on a failed write, completeness checks."""

import tarfile

import pytest

from alignclip_plugins.synthetic.writer import (
    TAR_MTIME,
    shard_name,
    shard_pattern,
    tar_is_complete,
    write_tar_atomic,
)

MEMBERS = [
    ("00000000.png", b"\x89PNG fake"),
    ("00000000.txt", "caf\u00e9".encode()),
    ("00000000.json", b"{}"),
]


def test_names_and_patterns():
    assert shard_name("train", 3) == "train/train-000003.tar"
    assert shard_pattern("train", 8) == "train/train-{000000..000007}.tar"
    assert shard_pattern("zeroshot", 1) == "zeroshot/zeroshot-{000000..000000}.tar"


def test_tar_is_deterministic_with_fixed_headers(tmp_path):
    a, b = tmp_path / "a" / "x.tar", tmp_path / "b" / "x.tar"
    assert write_tar_atomic(a, iter(MEMBERS)) == 3
    write_tar_atomic(b, MEMBERS)
    assert a.read_bytes() == b.read_bytes()
    with tarfile.open(a) as tar:
        infos = tar.getmembers()
        assert [i.name for i in infos] == [n for n, _ in MEMBERS]
        assert {(i.mtime, i.uid, i.gid, i.uname, i.gname, i.mode) for i in infos} == {
            (TAR_MTIME, 0, 0, "", "", 0o644)
        }
        assert tar.extractfile("00000000.txt").read() == "caf\u00e9".encode()


def test_failed_write_leaves_neither_file_nor_temporary(tmp_path):
    def members():
        yield MEMBERS[0]
        raise RuntimeError("interrupted")

    path = tmp_path / "x.tar"
    with pytest.raises(RuntimeError, match="interrupted"):
        write_tar_atomic(path, members())
    assert list(tmp_path.iterdir()) == []


def test_completeness_check(tmp_path):
    path = tmp_path / "x.tar"
    write_tar_atomic(path, MEMBERS)
    assert tar_is_complete(path, 3)
    assert not tar_is_complete(path, 6)
    assert not tar_is_complete(tmp_path / "missing.tar", 3)
    path.write_bytes(path.read_bytes()[:700])  # truncated mid-member
    assert not tar_is_complete(path, 3)
