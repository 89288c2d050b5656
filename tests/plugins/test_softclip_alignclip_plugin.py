"""``--plugins softclip_alignclip`` through the real trainer: the logged loss of a step is
the functional API's on that step's batch, and samples without ROIs take the hard label."""

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from alignclip_plugins.losses.softclip_alignclip import softclip_alignclip_loss
from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.rois.oracle import write_oracle_rois

HERE = Path(__file__).resolve().parents[1]
LOSS = re.compile(r"(\w+): ([-\d.e+]+) \(")


def logged_as(logged: float, value: float) -> bool:
    """Whether ``logged`` is ``value`` as the trainer logs it (5 significant digits)."""
    return abs(logged - value) <= 0.5 * 10 ** (math.floor(math.log10(abs(value))) - 4) * 1.01


@pytest.fixture(scope="module")
def rois_with_gaps(synth_data, tmp_path_factory) -> Path:
    """Oracle ROI sidecars in which every third sample has no ROIs."""
    out = tmp_path_factory.mktemp("rois")
    write_oracle_rois(synth_data, out=out, splits=("train",), progress=False)
    for counts_file in out.glob("*.rois/counts.npy"):
        counts = np.load(counts_file)
        counts[::3] = 0
        np.save(counts_file, counts)
    return out


def test_logged_terms_are_the_functional_loss_of_the_batch(
    synth_data, synth_objects, rois_with_gaps, tmp_path
):
    split = json.loads((synth_data / "manifest.json").read_text())["splits"]["train"]
    dump = tmp_path / "first-batch.pt"
    cmd = [
        sys.executable, str(HERE / "support" / "run_trainer.py"),
        "--model", model_arg(), "--train-data", str(synth_data / split["pattern"]),
        "--train-num-samples", "64", "--dataset-type", "webdataset",
        "--batch-size", "32", "--epochs", "1", "--lr", "1e-3", "--warmup", "2",
        "--workers", "1", "--precision", "fp32", "--seed", "3", "--log-every-n-steps", "1",
        "--logs", str(tmp_path), "--name", "sa", "--report-to", "",
        "--plugins", "softclip_alignclip,batch_dump.plugin", "--dump-first-batch", str(dump),
        "--softclip-rois", str(rois_with_gaps),
        "--alignclip-objects", str(synth_objects["objects"]),
        "--alignclip-vocabulary", str(synth_objects["vocabulary"]),
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = (tmp_path / "sa" / "out.log").read_text()
    assert "Loss: softclip-alignclip (plugin softclip_alignclip)" in log
    rows = [
        {k: float(v) for k, v in LOSS.findall(line.split("Logit Scale")[1])}
        for line in log.splitlines()
        if "Train Epoch" in line
    ]
    assert len(rows) == 2 and all(np.isfinite(list(r.values())).all() for r in rows)

    b = torch.load(dump)
    valid = b["roi_valid"]
    assert valid.any() and not valid.all()  # the batch has samples without ROIs
    feats = [b[k] for k in ("image_features", "text_features", "roi_features", "tag_features")]
    ids = (b["batch.image_objects"], b["batch.text_objects"])
    want = softclip_alignclip_loss(*feats, b["logit_scale"], *ids, roi_valid=valid)
    names = {"soft": "Soft_loss", "relation": "Relation_loss", "clip": "Contrastive_loss"}
    names["roi_tag"] = "Roi_tag_loss"
    assert set(rows[0]) == {names[k] for k in want} | {"Loss"}
    for key, value in want.items():
        assert logged_as(rows[0][names[key]], value.item()), (key, rows[0], want)
    total = sum(want.values()).item()
    assert logged_as(rows[0]["Loss"], total)
    # the ROI mask reached the loss: without it the terms differ
    unmasked = softclip_alignclip_loss(*feats, b["logit_scale"], *ids)
    assert not logged_as(rows[0]["Soft_loss"], unmasked["soft"].item())
    assert not logged_as(rows[0]["Roi_tag_loss"], unmasked["roi_tag"].item())
