"""Atomic writes: all or nothing, stale temporaries, and permissions from the umask."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

from alignclip_plugins.io.atomic import (
    atomic_save_figure,
    atomic_write_bytes,
    atomic_write_text,
    atomic_write_with,
    atomic_writer,
    make_temporary_directory,
    publish_directory,
    remove_stale_temporaries,
    temporary_path,
)


@pytest.fixture
def umask():
    """``umask(value)`` sets the process umask for the test; the old one comes back after."""
    old = os.umask(0o022)
    os.umask(old)

    def set_umask(value: int) -> None:
        os.umask(value)

    yield set_umask
    os.umask(old)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _figure():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1))
    FigureCanvasAgg(fig)
    fig.add_subplot(1, 1, 1).plot([0, 1], [1, 0])
    return fig


WRITERS = {
    "text": lambda p: atomic_write_text(p, "x\n"),
    "bytes": lambda p: atomic_write_bytes(p, b"x"),
    "stream": lambda p: atomic_write_with(p, lambda f: f.write(b"x")),
    "figure": lambda p: atomic_save_figure(_figure(), p.with_suffix(".png")),
}


@pytest.mark.parametrize("mask, expected", [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600)])
@pytest.mark.parametrize("writer", sorted(WRITERS))
def test_written_files_honour_the_umask(tmp_path, umask, writer, mask, expected):
    # mkstemp made every file 0600 whatever the umask: unreadable to the team
    umask(mask)
    path = tmp_path / "out" / "file.json"
    WRITERS[writer](path)
    written = path if writer != "figure" else path.with_suffix(".png")
    assert _mode(written) == expected
    assert [p.name for p in written.parent.iterdir()] == [written.name]  # no temporary left


@pytest.mark.parametrize("mask, expected", [(0o022, 0o755), (0o027, 0o750)])
def test_published_directories_honour_the_umask(tmp_path, umask, mask, expected):
    umask(mask)
    final = tmp_path / "shard.rois"
    tmp = make_temporary_directory(final)
    (tmp / "meta.json").write_text("{}")
    assert publish_directory(tmp, final) is True
    assert _mode(final) == expected and _mode(final / "meta.json") == expected & 0o666
    other = make_temporary_directory(final)  # a second writer finishing the same work
    assert publish_directory(other, final) is False and not other.exists()


def test_roi_sidecar_files_honour_the_umask(tmp_path, umask):
    from alignclip_plugins.rois.storage import ROI_DIM, write_sidecar

    umask(0o027)
    rows = [("k", np.ones((1, ROI_DIM), np.float32), [1.0], ["red circle"])]
    path = write_sidecar(tmp_path, "t-000000.tar", rows, 1, max_rois=1)
    assert _mode(path) == 0o750
    assert {_mode(f) for f in path.iterdir()} == {0o640}


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "f.objects.jsonl"
    path.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_writer(path) as f:
            f.write("new, partial")
            raise RuntimeError("crash")
    assert path.read_text() == "old\n"
    with pytest.raises(RuntimeError):
        with atomic_writer(path, "wb") as f:
            f.write(b"new")
            raise RuntimeError("crash")
    assert path.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["f.objects.jsonl"]
    with pytest.raises(ValueError, match="mode"):
        with atomic_writer(path, "a"):
            pass


def test_write_replaces_existing_file(tmp_path):
    path = tmp_path / "a.txt"
    atomic_write_text(path, "one")
    atomic_write_text(path, "two\n")
    assert path.read_text() == "two\n" and [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_stale_temporaries_of_dead_processes_are_removed(tmp_path):
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    dead = tmp_path / f".g.objects.jsonl.{finished.pid}.abc123.tmp"
    dead.write_text("left by a killed run")
    dead_dir = tmp_path / f".s.rois.{finished.pid}.abc123.tmp"
    dead_dir.mkdir()
    (dead_dir / "features.npy").write_bytes(b"partial")
    running = tmp_path / f".h.objects.jsonl.{os.getpid()}.xyz.tmp"
    running.write_text("being written by a live process")
    old_form = tmp_path / ".train-000000.tar.123.tmp"  # an earlier version's name, no token
    old_form.write_bytes(b"partial")
    (tmp_path / "train-000001.tar").write_bytes(b"keep")
    assert remove_stale_temporaries(tmp_path, ".objects.jsonl") == 1
    assert not dead.exists() and running.exists() and dead_dir.exists()
    assert remove_stale_temporaries(tmp_path) == 2  # the directory and the old-form file
    assert sorted(p.name for p in tmp_path.iterdir()) == [running.name, "train-000001.tar"]
    assert remove_stale_temporaries(tmp_path / "absent") == 0


def test_temporary_names_are_hidden_unique_and_carry_the_pid(tmp_path):
    a, b = temporary_path(tmp_path / "x.json"), temporary_path(tmp_path / "x.json")
    assert a != b and a.parent == tmp_path
    assert a.name.startswith(".x.json.") and a.name.endswith(".tmp")
    assert a.name.split(".")[-3] == str(os.getpid())
