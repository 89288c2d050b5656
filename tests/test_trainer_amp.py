"""``--precision amp`` (as the recipes train) for each plugin, through the real trainer on CPU.

On CPU upstream's ``amp`` is ``torch.autocast("cpu", dtype=float16)`` with a CPU GradScaler:
the step's features come out in float16, and the logged loss must be the loss of those
features (computed here in float32 with the functional API) and finite at every step.
"""

import math
import re

import pytest
import torch

from alignclip_plugins.losses import functional

pytestmark = pytest.mark.slow

LOSS = re.compile(r"(\w+): ([-\d.e+]+) \(")


def expected_loss(plugin: str, b: dict) -> float:
    """The plugin's default loss on the dumped step, in float32."""
    f = {k: v.float() for k, v in b.items() if v.is_floating_point()}
    feats = (f["image_features"], f["text_features"], f["logit_scale"])
    if plugin == "label_smoothing":
        return functional.label_smoothing_loss(*feats).item()
    if plugin == "alignclip":
        ids = (b["batch.image_objects"], b["batch.text_objects"])
        return functional.object_iou_loss(*feats, *ids).item()
    roi = (f["roi_features"], f["tag_features"])
    terms = functional.softclip_loss(*feats[:2], *roi, feats[2], roi_valid=b["roi_valid"])
    return sum(terms.values()).item()


@pytest.mark.parametrize("plugin", ["label_smoothing", "alignclip", "softclip"])
def test_amp_training_of_each_plugin(plugin, synth_data, plugin_data_options, trainer, tmp_path):
    command, run = trainer
    dump = tmp_path / "step0.pt"
    run(command(synth_data, tmp_path, "amp", "--plugins", f"{plugin},batch_dump.plugin",
                "--dump-first-batch", str(dump), *plugin_data_options[plugin],
                precision="amp"))  # fmt: skip
    log = (tmp_path / "amp" / "out.log").read_text()
    rows = [
        {k: float(v) for k, v in LOSS.findall(line.split("Logit Scale")[1])}
        for line in log.splitlines()
        if "Train Epoch" in line
    ]
    assert len(rows) == 2 and all(math.isfinite(v) for r in rows for v in r.values())
    b = torch.load(dump)
    assert b["image_features"].dtype == b["text_features"].dtype == torch.float16  # autocast
    assert rows[0]["Loss"] == pytest.approx(expected_loss(plugin, b), rel=2e-3)
