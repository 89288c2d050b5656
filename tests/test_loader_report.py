"""The training loader's per-epoch report: drops (undecodable image, sample without image or
caption, truncated tar) with their keys and shards, repeats, and left-over samples."""

import io
import math
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from open_clip_train import data as upstream_data
from open_clip_train.params import parse_args

from alignclip_plugins import host, loader_report
from alignclip_plugins.model_configs import model_arg

HERE = Path(__file__).resolve().parent


def _rewrite(src: Path, dst: Path, change) -> None:
    with tarfile.open(src) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(dst, "w") as out:
        for member, data in members:
            data = change(member.name, data)
            if data is not None:
                member.size = len(data)
                out.addfile(member, io.BytesIO(data))


def damaged_shards(synth_data: Path, out: Path) -> dict:
    """Copies of the 4 training shards: shard 0 with an undecodable PNG, shard 1 cut inside
    a PNG half-way, shard 2 with a sample lacking its caption, shard 3 intact. Returns the
    damaged keys and the number of complete samples (what the loader can train on)."""
    out.mkdir()
    shards = sorted((synth_data / "train").glob("train-*.tar"))
    keys = []
    for shard in shards:
        with tarfile.open(shard) as tar:
            keys.append(sorted({m.name.split(".")[0] for m in tar.getmembers()}))
    bad_png, no_caption = keys[0][3], keys[2][5]
    _rewrite(shards[0], out / shards[0].name,
             lambda n, d: b"not a png" if n == f"{bad_png}.png" else d)  # fmt: skip
    _rewrite(shards[2], out / shards[2].name, lambda n, d: None if n == f"{no_caption}.txt" else d)
    (out / shards[3].name).write_bytes(shards[3].read_bytes())
    with tarfile.open(shards[1]) as tar:
        cut_key = keys[1][len(keys[1]) // 2]
        cut_at = tar.getmember(f"{cut_key}.png").offset_data + 10
    (out / shards[1].name).write_bytes(shards[1].read_bytes()[:cut_at])
    complete = 3 * 64 - 2 + keys[1].index(cut_key)
    return {"bad_png": bad_png, "no_caption": no_caption, "cut": shards[1].name,
            "complete": complete, "pattern": str(out / "train-{000000..000003}.tar")}  # fmt: skip


@pytest.fixture(scope="module")
def damaged(synth_data, tmp_path_factory) -> dict:
    return damaged_shards(synth_data, tmp_path_factory.mktemp("damaged") / "shards")


def _args(pattern: str, *extra: str):
    args = parse_args(
        ["--model", model_arg(), "--train-data", pattern, "--dataset-type", "webdataset",
         "--workers", "0", *extra]
    )  # fmt: skip
    args.world_size, args.rank, args.distributed = 1, 0, False
    return args


def report(epoch: int, args) -> str | None:
    """The epoch's line of the run's loader totals (what the host's evaluate call logs)."""
    return host.host_for(args).stash_for(args)[loader_report.TOTALS].report(epoch, args)


def _train_loader(args, epoch: int = 0):
    def tokenize(texts):
        return torch.zeros(1, 4, dtype=torch.long)

    return upstream_data.get_wds_dataset(
        args, lambda image: torch.zeros(3, 4, 4), is_train=True, epoch=epoch, tokenizer=tokenize
    )


def test_one_epoch_counts_drops_repeats_and_leftover_in_process(damaged, monkeypatch, caplog):
    monkeypatch.setattr(host, "_HOSTS", {})  # a fresh host: nothing pending from other tests
    batch, complete = 16, damaged["complete"]
    num = 256  # more than the damaged shards hold: the loader reads them again
    args = _args(damaged["pattern"], "--plugins", "label_smoothing", "--batch-size", str(batch),
                 "--train-num-samples", str(num))  # fmt: skip
    info = _train_loader(args)
    with caplog.at_level("WARNING"):
        batches = [host.batch_to_device(b, args, device="cpu", input_dtype=None)
                   for b in info.dataloader]  # fmt: skip
    assert len(batches) == num // batch and all(loader_report.FIELD not in b for b in batches)
    line = report(1, args)
    # one worker: a first pass trains floor(complete / batch) batches, leaves the rest out,
    # and a second pass fills the epoch with repeats
    first = complete // batch * batch
    assert line.startswith(f"training loader, epoch 1: {num} samples, {num - first} of them ")
    assert f"; {complete - first} samples read but left out" in line
    shards = Path(damaged["pattern"]).parent
    assert (
        f"1 undecodable sample (first: sample '{damaged['bad_png']}' of "
        f"{shards}/train-000000.tar (UnidentifiedImageError: cannot identify image file))"
    ) in line
    assert (
        f"1 sample without an image or a caption (first: sample '{damaged['no_caption']}' of "
        f"{shards}/train-000002.tar (no image or no caption; its members: json, png))"
    ) in line
    assert (
        f"1 shard cut short by a tar error (first: {shards}/{damaged['cut']} (ReadError: "
    ) in line
    # each drop is also logged when it happens, again when a pass reads it again
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert logged.count(f"{damaged['cut']} (ReadError: unexpected end of data): the rest of") == 2
    for key in (damaged["bad_png"], damaged["no_caption"]):
        assert f"training loader: sample '{key}' of " in logged
    assert report(2, args) is None  # popped: the next epoch starts at zero


def test_intact_shards_have_no_repeats_and_none_dropped(synth_data, monkeypatch):
    monkeypatch.setattr(host, "_HOSTS", {})
    pattern = str(synth_data / "train" / "train-{000000..000003}.tar")
    args = _args(pattern, "--plugins", "label_smoothing", "--batch-size", "32",
                 "--train-num-samples", "256")  # fmt: skip
    for b in _train_loader(args).dataloader:
        host.batch_to_device(b, args, device="cpu", input_dtype=None)
    assert report(1, args) == (
        "training loader, epoch 1: 256 samples, 0 of them repeats; none dropped"
    )


def test_without_plugins_the_pipeline_is_upstreams(synth_data):
    pattern = str(synth_data / "train" / "train-{000000..000003}.tar")
    args = _args(pattern, "--batch-size", "32", "--train-num-samples", "256")
    stages = _train_loader(args).dataloader.pipeline[0].dataset.pipeline  # WebLoader(DataLoader)
    assert upstream_data.tarfile_to_samples_nothrow in stages
    assert not [s for s in stages if type(s).__module__ == loader_report.__name__]
    batch = next(iter(_train_loader(args).dataloader))
    assert isinstance(batch, (list, tuple)) and len(batch) == 2  # upstream's tuples


def test_a_pass_after_one_that_ran_out_is_repeats():
    import webdataset as wds

    events = loader_report.LoaderEvents()
    batcher = wds.batched(4, partial=False, collation_fn=_collate)  # as training batches
    stage = loader_report.ReportBatches(batcher, events)

    def reports(n, stop=None):
        out = []
        for batch in stage({"image": torch.zeros(1)} for _ in range(n)):
            out.append(batch[loader_report.FIELD])
            if len(out) == stop:
                break  # the epoch has its batches: the pass is cut off (upstream's islice)
        return [(r.samples, r.repeats, r.leftover) for r in out]

    assert reports(10) == [(4, 0, 0), (4, 0, 0)]  # ran out, 2 samples left over
    assert reports(10, stop=1) == [(4, 4, 2)]  # the same epoch goes on: repeats
    assert reports(10, stop=1) == [(4, 0, 0)]  # a cut-off pass: the next one is a new epoch
    events.drop(loader_report.UNDECODABLE, "s.tar", "k", "bad")
    assert stage({"image": torch.zeros(1)} for _ in range(4)).__next__()[loader_report.FIELD] == (
        loader_report.LoaderBatch(4, 0, (loader_report.Drop("undecodable", "s.tar", "k", "bad"),))
    )


def _collate(samples):
    return {"image": torch.stack([s["image"] for s in samples])}


@pytest.mark.slow
def test_trainer_logs_the_epochs_report_across_loader_workers(synth_data, damaged, tmp_path):
    """Two loader workers each see two shards; the trainer's process adds their reports."""
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"), "--model", model_arg(),
        "--train-data", damaged["pattern"], "--train-num-samples", "256",
        "--dataset-type", "webdataset", "--batch-size", "32", "--epochs", "1", "--lr", "1e-3",
        "--warmup", "2", "--workers", "2", "--precision", "fp32", "--seed", "3",
        "--log-every-n-steps", "1", "--logs", str(tmp_path), "--name", "damaged",
        "--report-to", "", "--plugins", "label_smoothing",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "damaged" / "out.log").read_text()
    m = re.search(
        r"training loader, epoch 1: 256 samples, (\d+) of them repeats .*?; (\d+) samples read "
        r"but left out .*?; dropped: 1 undecodable sample \(first: sample '(\w+)' .*?\), 1 "
        r"sample without an image or a caption \(first: sample '(\w+)' .*?\), 1 shard cut "
        r"short by a tar error \(first: (\S+) \(ReadError",
        log,
    )
    assert m, log[-3000:]
    repeats, leftover = int(m[1]), int(m[2])
    # every complete sample was trained once (256 - repeats of them) or left over
    assert 256 - repeats + leftover == damaged["complete"]
    assert (m[3], m[4]) == (damaged["bad_png"], damaged["no_caption"])
    assert m[5].endswith(damaged["cut"])
    steps = [line for line in log.splitlines() if "Train Epoch" in line]
    assert len(steps) == 8 and all(math.isfinite(float(s.split()[-2])) for s in steps)
    assert not (tmp_path / "damaged" / "checkpoints" / "results.jsonl").exists()
