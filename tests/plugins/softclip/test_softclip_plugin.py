"""``--plugins softclip`` through the real trainer (subprocesses, tiny ViT, oracle ROIs)."""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
from argparse import Namespace
from pathlib import Path

import numpy as np
import pytest
import torch

from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.plugins import softclip as softclip_plugin
from alignclip_plugins.rois.oracle import write_oracle_rois
from alignclip_plugins.rois.storage import ROI_DIM, write_sidecar
from alignclip_plugins.stash import Stash

HERE = Path(__file__).resolve().parents[2]
LOSS = re.compile(r"(\w+): ([-\d.e+]+) \(")


@pytest.fixture(scope="module")
def rois(synth_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("rois")
    write_oracle_rois(synth_data, out=out, splits=("train",), progress=False)
    return out


def run(data, logs, name, *extra, epochs=1, check=True):
    split = json.loads((data / "manifest.json").read_text())["splits"]["train"]
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"),
        "--model", model_arg(), "--train-data", str(data / split["pattern"]),
        "--train-num-samples", str(split["num_samples"]), "--dataset-type", "webdataset",
        "--batch-size", "32", "--epochs", str(epochs), "--lr", "1e-3", "--warmup", "2",
        "--workers", "1", "--precision", "fp32", "--seed", "3", "--log-every-n-steps", "1",
        "--logs", str(logs), "--name", name, "--report-to", "", "--plugins", "softclip", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def losses(run_dir: Path) -> list[dict[str, float]]:
    return [
        {k: float(v) for k, v in LOSS.findall(line.split("Logit Scale")[1])}
        for line in (run_dir / "out.log").read_text().splitlines()
        if "Train Epoch" in line
    ]


def test_softclip_trains_checkpoints_and_resumes_its_roi_encoder(synth_data, rois, tmp_path):
    import open_clip

    # three samples of one shard lose their ROIs: they are trained with hard labels
    rois_copy = tmp_path / "rois"
    shutil.copytree(rois, rois_copy)
    counts_file = rois_copy / "train-000001.rois" / "counts.npy"
    counts = np.load(counts_file)
    counts[[0, 5, 9]] = 0
    np.save(counts_file, counts)

    run(synth_data, tmp_path, "sc", "--softclip-rois", str(rois_copy), "--accum-freq", "2")
    rows = losses(tmp_path / "sc")
    assert len(rows) == 4  # 8 batches, accumulated in pairs
    assert {"Soft_loss", "Relation_loss", "Contrastive_loss", "Roi_tag_loss"} <= set(rows[0])
    assert all(np.isfinite(list(r.values())).all() for r in rows)
    results = [json.loads(x) for x in (tmp_path / "sc/checkpoints/results.jsonl").open()]
    assert results == [{"softclip_samples_without_rois": 3, "softclip_samples": 256, "epoch": 1}]
    assert (
        "3 of 256 training samples of epoch 1 (rank 0) had no ROIs"
        in (tmp_path / "sc" / "out.log").read_text()
    )

    ckpt_path = tmp_path / "sc/checkpoints/epoch_1.pt"
    ckpt = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    enc_keys = {k for k in ckpt["state_dict"] if k.startswith("roi_encoder.")}
    assert {"roi_encoder.embed.weight", "roi_encoder.class_embedding", "roi_encoder.proj"} <= (
        enc_keys
    )
    assert any(k.startswith("roi_encoder.blocks.0.attn") for k in enc_keys)
    n_clip = len(list(open_clip.create_model(model_arg()).parameters()))
    n_enc = len({k for k in enc_keys})
    assert len(ckpt["optimizer"]["state"]) == n_clip + n_enc  # the encoder is optimised
    # a stock open_clip model loads the checkpoint once the encoder's keys are stripped
    stock = open_clip.create_model(model_arg())
    stock.load_state_dict({k: v for k, v in ckpt["state_dict"].items() if k not in enc_keys})

    # --resume restores the encoder: mark it, resume with lr 0, find the mark at epoch 2
    ckpt["state_dict"]["roi_encoder.embed.bias"].fill_(0.125)
    torch.save(ckpt, ckpt_path)
    run(synth_data, tmp_path, "sc", "--softclip-rois", str(rois_copy), "--accum-freq", "2",
        "--resume", "latest", "--lr", "0", epochs=2)  # fmt: skip
    assert "resuming checkpoint" in (tmp_path / "sc" / "out.log").read_text()
    after = torch.load(tmp_path / "sc/checkpoints/epoch_2.pt", map_location="cpu")
    assert torch.equal(after["state_dict"]["roi_encoder.embed.bias"], torch.full((128,), 0.125))


def test_startup_errors_name_the_shard_and_the_fix(synth_data, rois, tmp_path):
    partial = tmp_path / "partial"
    shutil.copytree(rois, partial)
    shutil.rmtree(partial / "train-000002.rois")
    proc = run(synth_data, tmp_path, "missing", "--softclip-rois", str(partial), check=False)
    assert proc.returncode != 0
    assert "1 of 4 shard(s) have no ROI sidecar" in proc.stderr
    assert "train-000002.tar" in proc.stderr and "alignclip rois oracle" in proc.stderr
    assert not (tmp_path / "missing").exists() or not list((tmp_path / "missing").rglob("*.pt"))

    # the same check (the plugin's octrain_configure hook) rejects vectors of the wrong size
    wrong = tmp_path / "wrong"
    shutil.copytree(rois, wrong)
    shutil.rmtree(wrong / "train-000003.rois")
    write_sidecar(wrong, "train-000003.tar", [("x", np.zeros((1, 2048)), [1.0], ["a b"])], 1,
                  dim=2048)  # fmt: skip
    split = json.loads((synth_data / "manifest.json").read_text())["splits"]["train"]
    options = argparse.ArgumentParser()
    softclip_plugin.options.add_arguments(options)  # the plugin's options at their defaults
    args = Namespace(**{**vars(options.parse_args([])), "softclip_max_rois": 10,
                        "softclip_roi_layers": 1, "loss": "softclip",
                        "train_data": str(synth_data / split["pattern"]),
                        "dataset_type": "webdataset", "softclip_rois": str(wrong)})  # fmt: skip
    with pytest.raises(ValueError, match="train-000003.rois: vectors of size 2048, expected 2052"):
        softclip_plugin.octrain_configure(args=args)
    args.softclip_rois = str(rois)
    softclip_plugin.octrain_configure(args=args)
    args.dataset_type = "csv"
    with pytest.raises(ValueError, match="--dataset-type csv is not supported"):
        softclip_plugin.octrain_configure(args=args)


def test_nan_features_are_left_out_naming_shard_and_key(synth_data, rois, tmp_path):
    # they stopped training mid-epoch (after 7 steps, no checkpoint): now the sample trains
    # without ROIs (hard labels), logged with its key; `alignclip rois check` finds it first
    bad = tmp_path / "bad"
    shutil.copytree(rois, bad)
    sidecar = bad / "train-000000.rois"
    key = json.loads((sidecar / "samples.jsonl").open().readline())["key"]
    mm = np.load(sidecar / "features.npy", mmap_mode="r+")
    assert mm.shape[2] == ROI_DIM
    mm[0, 0, 3] = np.nan
    mm.flush()
    del mm
    proc = run(synth_data, tmp_path, "nan", "--softclip-rois", str(bad), check=False)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log
    assert f"sample '{key}' of shard train-000000.tar" in log
    assert "NaN or inf" in log and "its ROIs are left out" in log
    logged = losses(tmp_path / "nan")
    assert logged and all(np.isfinite(v) for step in logged for v in step.values())


def test_detector_free_guidance_mix_needs_no_rois(synth_data):
    """γ = 0 (Fig. 4a's image/text end point): no sidecar check, ROI encoder or stage, and
    the loss is L(I,T) whatever ROI / tag features would have been."""
    from open_clip_train.params import parse_args

    from alignclip_plugins import host
    from alignclip_plugins.losses.functional import guidance_mix_loss
    from alignclip_plugins.losses.softclip import GuidanceMixLoss

    split = json.loads((synth_data / "manifest.json").read_text())["splits"]["train"]
    argv = [
        "--model",
        model_arg(),
        "--train-data",
        str(synth_data / split["pattern"]),
        "--dataset-type",
        "webdataset",
        "--plugins",
        "softclip",
        "--loss",
        "softclip-guidance-mix",
    ]  # fmt: skip  (no ROI sidecars exist for these shards)
    args = parse_args([*argv, "--softclip-gamma", "0"])
    assert softclip_plugin.detector_free(args)
    assert softclip_plugin.octrain_attach_modules(None, args) is None
    assert host.sample_stages(args, is_train=True, tokenizer=None) == []
    assert softclip_plugin.octrain_collate_fields(args, True, Stash()) is None
    with pytest.raises(SystemExit):  # γ > 0 reads ROIs: their absence stops it at start-up
        parse_args([*argv, "--softclip-gamma", "0.5"])
    torch.manual_seed(0)
    image, text, roi, tag = (torch.nn.functional.normalize(torch.randn(6, 8), dim=1)
                             for _ in range(4))  # fmt: skip
    scale = torch.tensor(2.0)
    ours = GuidanceMixLoss(gamma=0.0)(image, text, scale, output_dict=True)
    reference = guidance_mix_loss(image, text, roi, tag, scale, gamma=0.0)
    assert set(ours) == {f"{k}_loss" for k in reference}
    for k, v in reference.items():
        assert ours[f"{k}_loss"].item() == pytest.approx(v.item(), rel=1e-6)


@pytest.mark.slow
def test_the_roi_features_drive_the_soft_terms(synth_data, synth_rois, trainer, tmp_path):
    """Same model, same batch; only the ROI vectors differ (each sample gets another's): the
    SoftCLIP terms change, the hard CLIP term does not, and each run's logged terms are the
    functional loss of its own ROI features."""
    from alignclip_plugins.losses.functional import softclip_loss

    command, run_trainer = trainer
    moved = tmp_path / "moved-rois"
    shutil.copytree(synth_rois, moved)
    for features in moved.glob("*.rois/features.npy"):
        mm = np.load(features, mmap_mode="r+")
        mm[:] = np.roll(np.array(mm), 1, axis=0)
        mm.flush()
        del mm
    runs = {}
    for name, rois_dir in (("own", synth_rois), ("moved", moved)):
        dump = tmp_path / f"{name}.pt"
        run_trainer(command(synth_data, tmp_path, name, "--plugins", "softclip,batch_dump.plugin",
                            "--softclip-rois", str(rois_dir), "--dump-first-batch", str(dump),
                            samples=32))  # fmt: skip
        runs[name] = (losses(tmp_path / name)[0], torch.load(dump))
    (own, a), (moved_row, b) = runs["own"], runs["moved"]
    assert torch.equal(a["batch.image"], b["batch.image"])  # the same batch ...
    assert torch.equal(a["batch.text"], b["batch.text"])
    assert not torch.equal(a["batch.roi_features"], b["batch.roi_features"])  # ... other ROIs
    assert own["Contrastive_loss"] == moved_row["Contrastive_loss"]
    for term in ("Soft_loss", "Relation_loss", "Roi_tag_loss"):
        assert own[term] != pytest.approx(moved_row[term], rel=1e-3), term
    names = {"soft": "Soft_loss", "relation": "Relation_loss", "clip": "Contrastive_loss",
             "roi_tag": "Roi_tag_loss"}  # fmt: skip
    for row, d in ((own, a), (moved_row, b)):
        feats = [d[k] for k in ("image_features", "text_features", "roi_features", "tag_features")]
        want = softclip_loss(*feats, d["logit_scale"], roi_valid=d["roi_valid"])
        for key, value in want.items():
            assert row[names[key]] == pytest.approx(value.item(), rel=2e-4), key


def test_the_runs_state_is_kept_per_run_by_the_host(synth_data, rois, monkeypatch):
    """The tag padding id and the epoch's ROI counts live in each run's stash: two runs in
    one process (one cached host) do not see each other's, and neither lives in ``args``."""
    import open_clip
    from open_clip_train.params import parse_args

    from alignclip_plugins import host

    monkeypatch.setattr(host, "_HOSTS", {})
    split = json.loads((synth_data / "manifest.json").read_text())["splits"]["train"]
    argv = ["--model", model_arg(), "--train-data", str(synth_data / split["pattern"]),
            "--dataset-type", "webdataset", "--plugins", "softclip", "--softclip-rois", str(rois)]  # fmt: skip
    first, second = parse_args(argv), parse_args(argv)
    first.rank = second.rank = 0
    active = host.host_for(first)
    assert host.host_for(second) is active
    tokenizer = open_clip.get_tokenizer(model_arg())
    stages = host.sample_stages(first, is_train=True, tokenizer=tokenizer)
    assert [type(s).__name__ for s in stages] == ["RoiSampleStage"]
    assert active.stash_for(first)[softclip_plugin.TAG_PAD_ID] == 0
    assert softclip_plugin.TAG_PAD_ID not in active.stash_for(second)
    assert not any("pad" in name for name in vars(first))  # not in the run's options
    torch.manual_seed(0)
    model = open_clip.create_model(model_arg())
    host.attach_modules(model, first, device="cpu")
    batch = {
        "roi_features": torch.randn(3, 2, ROI_DIM),
        "roi_mask": torch.tensor([[True, True], [False, False], [True, False]]),
        "tag_text": torch.tensor([[49406, 320, 49407], [49406, 49407, 0], [49406, 321, 49407]]),
    }
    out = host.forward_features(model, batch, {}, first)
    assert out["roi_valid"].tolist() == [True, False, True]
    assert host.evaluate(model, {}, 1, second, tokenizer=None) == {}  # nothing of the first's
    assert host.evaluate(model, {}, 1, first, tokenizer=None) == {
        "softclip_samples_without_rois": 1, "softclip_samples": 3, "epoch": 1
    }  # fmt: skip
    assert host.evaluate(model, {}, 2, first, tokenizer=None) == {}  # popped with the epoch
