"""Real training runs of ``python -m open_clip_train.main`` on generated shards (CPU)."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.patching.importer import DISABLE_ENV

HERE = Path(__file__).resolve().parent
LOSS = re.compile(r"(\w+): ([-\d.e+]+) \(")


def train(data, logs: Path, name: str, *extra: str, unpatched=False, epochs=1, batch_size=32):
    manifest = json.loads((data / "manifest.json").read_text())
    split = manifest["splits"]["train"]
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"),
        "--model", model_arg(), "--train-data", str(data / split["pattern"]),
        "--train-num-samples", str(split["num_samples"]), "--dataset-type", "webdataset",
        "--batch-size", str(batch_size), "--epochs", str(epochs), "--lr", "1e-3", "--warmup", "2",
        "--workers", "1", "--precision", "fp32", "--seed", "3", "--log-every-n-steps", "1",
        "--logs", str(logs), "--name", name, "--report-to", "", *extra,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    if unpatched:
        env[DISABLE_ENV] = "1"
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return logs / name


def logged_losses(run: Path) -> list[dict[str, float]]:
    rows = []
    for line in (run / "out.log").read_text().splitlines():
        if "Train Epoch" in line:
            rows.append({k: float(v) for k, v in LOSS.findall(line.split("Logit Scale")[1])})
    assert rows, f"no training lines in {run / 'out.log'}"
    return rows


def logged_as(logged: float, value: float) -> bool:
    """Whether ``logged`` is ``value`` as the trainer logs it (5 significant digits)."""
    half_unit = 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 4)
    return abs(logged - value) <= half_unit * 1.01 + 1e-7


def test_no_plugins_is_exactly_upstream(synth_data, tmp_path):
    upstream_run = train(synth_data, tmp_path, "upstream", unpatched=True)
    patched_run = train(synth_data, tmp_path, "patched")
    # the patch was applied in that run (its parser has --plugins, which upstream's dump of
    # the options lists) and not in the plain upstream one
    options = [(run / "params.txt").read_text().splitlines() for run in (patched_run, upstream_run)]
    assert "plugins: " in options[0] and not any(o.startswith("plugins:") for o in options[1])
    upstream, patched = logged_losses(upstream_run), logged_losses(patched_run)
    assert len(upstream) == 8
    assert patched == upstream  # identical logged values, step by step
    # and at full precision: the trained weights and the optimizer state, bit for bit
    ckpts = [
        torch.load(run / "checkpoints" / "epoch_1.pt", map_location="cpu", weights_only=False)
        for run in (patched_run, upstream_run)
    ]
    assert ckpts[0]["state_dict"].keys() == ckpts[1]["state_dict"].keys()
    for name, value in ckpts[1]["state_dict"].items():
        assert torch.equal(ckpts[0]["state_dict"][name], value), name
    states = [c["optimizer"]["state"] for c in ckpts]
    assert states[0].keys() == states[1].keys() and len(states[1]) > 0
    for index, state in states[1].items():
        for key, value in state.items():
            assert torch.equal(states[0][index][key], value), (index, key)


def test_label_smoothing_alpha_zero_matches_hard_clip(synth_data, tmp_path):
    """The plugin path (dict batches, plugin loss) reproduces upstream when the loss is CLIP's."""
    upstream = logged_losses(train(synth_data, tmp_path, "upstream", unpatched=True))
    ls = logged_losses(
        train(synth_data, tmp_path, "ls0", "--plugins", "label_smoothing", "--ls-alpha", "0")
    )
    assert [r["Loss"] for r in ls] == pytest.approx([r["Loss"] for r in upstream], rel=1e-4)


def test_label_smoothing_run_checkpoints_results_and_resume(synth_data, tmp_path):
    manifest = json.loads((synth_data / "manifest.json").read_text())
    val = ["--val-data", str(synth_data / manifest["splits"]["retrieval"]["pattern"]),
           "--val-num-samples", str(manifest["splits"]["retrieval"]["num_samples"])]  # fmt: skip
    dump = tmp_path / "first-batch.pt"
    run = train(synth_data, tmp_path, "ls", "--plugins", "label_smoothing,batch_dump.plugin",
                "--dump-first-batch", str(dump), *val)  # fmt: skip
    assert (run / "checkpoints" / "epoch_1.pt").is_file()
    # the logged loss of step 0 is label smoothing at α = 0.2 on that step's batch, not CLIP
    from alignclip_plugins.losses.functional import clip_loss, label_smoothing_loss

    inputs = torch.load(dump)
    feats = (inputs["image_features"], inputs["text_features"], inputs["logit_scale"])
    assert feats[0].shape[0] == 32
    logged = logged_losses(run)[0]
    want = label_smoothing_loss(*feats, alpha=0.2).item()
    assert logged_as(logged["Label_smoothing_loss"], want) and logged_as(logged["Loss"], want)
    # at initialisation the two are close, but apart at the logged precision
    assert not logged_as(logged["Loss"], clip_loss(*feats).item())
    results = [
        json.loads(x) for x in (run / "checkpoints" / "results.jsonl").read_text().splitlines()
    ]
    assert results[0]["epoch"] == 1 and "clip_val_loss" in results[0]
    assert "image_to_text_R@1" in results[0]
    params = (run / "params.txt").read_text()
    assert "loss: label-smoothing" in params and "ls_alpha: 0.2" in params

    run = train(
        synth_data,
        tmp_path,
        "ls",
        "--plugins",
        "label_smoothing",
        *val,
        "--resume",
        "latest",
        epochs=2,
    )
    log = (run / "out.log").read_text()
    assert "resuming checkpoint" in log and "(epoch 1)" in log
    assert (run / "checkpoints" / "epoch_2.pt").is_file()
    epochs = [
        json.loads(x)["epoch"]
        for x in (run / "checkpoints" / "results.jsonl").read_text().splitlines()
    ]
    assert epochs == [1, 2]
    assert "Train Epoch: 1" in log and "Train Epoch: 0" in log.split("resuming checkpoint")[0]


def _write_probe_sidecars(data: Path, value: float) -> None:
    import tarfile

    for shard in (data / "train").glob("*.tar"):
        with tarfile.open(shard) as tar:
            keys = {m.name.split(".")[0] for m in tar.getmembers()}
        shard.with_suffix(".probe.json").write_text(json.dumps({k: value for k in keys}))


def test_every_hook_end_to_end_with_a_third_party_plugin(synth_data, tmp_path, probe_plugin_path):
    import open_clip

    # sidecar value 0 zeroes the probe output: the probe loss is 0 only if the sidecar
    # values travel sample stage -> collation -> batch -> octrain_forward_features -> loss
    _write_probe_sidecars(synth_data, 0.0)
    run = train(
        synth_data, tmp_path, "probe", "--plugins", "probe", "--probe-sidecars",
        "--probe-weight", "1.0", "--accum-freq", "2",
    )  # fmt: skip
    rows = logged_losses(run)
    assert len(rows) == 4  # 8 batches, accumulated in pairs
    assert {"Contrastive_loss", "Probe_loss", "Loss"} <= set(rows[0])
    assert all(r["Probe_loss"] == 0.0 for r in rows)
    run = train(
        synth_data, tmp_path, "probe-nosidecar", "--plugins", "probe", "--probe-weight", "1.0"
    )
    assert all(r["Probe_loss"] > 0 for r in logged_losses(run))

    # the attached module is saved with the model and optimised with it
    ckpt = torch.load(run / "checkpoints" / "epoch_1.pt", map_location="cpu", weights_only=False)
    assert {"probe.weight", "probe.bias"} <= set(ckpt["state_dict"])
    clip_params = len(list(open_clip.create_model(model_arg()).parameters()))
    assert len(ckpt["optimizer"]["state"]) == clip_params + 2
    # octrain_evaluate hook: its metric lands in results.jsonl (no --val-data given)
    metrics = [
        json.loads(x) for x in (run / "checkpoints" / "results.jsonl").read_text().splitlines()
    ]
    assert metrics == [
        {"probe_bias": pytest.approx(ckpt["state_dict"]["probe.bias"].item()), "epoch": 1}
    ]


def synthetic_run(logs: Path, name: str, plugins: str) -> subprocess.CompletedProcess:
    """upstream's --dataset-type synthetic (generated images, no --train-data), 2 steps."""
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"), "--model", model_arg(),
        "--dataset-type", "synthetic", "--train-num-samples", "32", "--batch-size", "16",
        "--epochs", "1", "--lr", "1e-3", "--warmup", "1", "--workers", "0", "--precision", "fp32",
        "--log-every-n-steps", "1", "--logs", str(logs), "--name", name, "--report-to", "",
        "--plugins", plugins,
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


def test_synthetic_data_trains_label_smoothing_and_is_refused_by_shard_plugins(tmp_path):
    proc = synthetic_run(tmp_path, "ls", "label_smoothing")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = logged_losses(tmp_path / "ls")
    assert len(rows) == 2 and all(math.isfinite(r["Label_smoothing_loss"]) for r in rows)
    # it used to start and die at step 1 with MissingLossInputError
    proc = synthetic_run(tmp_path, "sc", "softclip")
    assert proc.returncode == 2
    refused = "--plugins softclip: --dataset-type synthetic (generated images, no shards) is not"
    assert f"{refused} supported" in proc.stderr
    assert not (tmp_path / "sc").exists()  # no run directory, no model
