"""``torchrun --nproc-per-node 2`` (gloo, CPU) of each plugin through the real trainer.

Each run trains one epoch of 2 steps (8 samples per rank) with ``--local-loss
--gather-with-grad``, then resumes from its checkpoint (``--resume latest``) for a second
epoch. Checked: finite losses; the first step's loss (the mean of the ranks' local losses,
recorded at full precision) equals the one-process loss of the global batch both ranks saw,
recomputed here with the functional API from their dumped batches; the resumed model (CLIP
and plugin modules, such as softclip's ROI encoder) holds the checkpoint's weights.
"""

import json
import math
import re
import sys

import pytest
import torch

from alignclip_plugins.losses import functional

pytestmark = pytest.mark.slow

LOSS = re.compile(r"(\w+): ([-\d.e+]+) \(")
TORCHRUN = (sys.executable, "-m", "torch.distributed.run", "--standalone",
            "--nproc-per-node", "2", "--")  # fmt: skip
DDP = ("--local-loss", "--gather-with-grad", "--device", "cpu", "--dist-backend", "gloo")


def logged_losses(log: str) -> list[dict[str, float]]:
    return [
        {k: float(v) for k, v in LOSS.findall(line.split("Logit Scale")[1])}
        for line in log.splitlines()
        if "Train Epoch" in line
    ]


def pad_cat(ids: list[torch.Tensor]) -> torch.Tensor:
    """Object-id rows of the ranks (each padded with -1 to its own width), one tensor."""
    width = max(t.shape[1] for t in ids)
    return torch.cat([torch.nn.functional.pad(t, (0, width - t.shape[1]), value=-1) for t in ids])


def global_loss(plugin: str, dumps: list[dict]) -> float:
    """The plugin's default loss of the concatenated batch of the ranks, one process."""

    def cat(key):
        return torch.cat([d[key] for d in dumps])

    v, t, s = cat("image_features"), cat("text_features"), dumps[0]["logit_scale"]
    if plugin == "label_smoothing":
        return functional.label_smoothing_loss(v, t, s).item()
    if plugin == "alignclip":
        ids = [pad_cat([d[f"batch.{k}"] for d in dumps]) for k in ("image_objects", "text_objects")]
        return functional.object_iou_loss(v, t, s, *ids).item()
    terms = functional.softclip_loss(
        v, t, cat("roi_features"), cat("tag_features"), s, roi_valid=cat("roi_valid")
    )
    return sum(terms.values()).item()


def recorded_losses(directory, rank: int) -> list[float]:
    """The total loss of every step of rank ``rank``, full precision (run_trainer.py)."""
    lines = (directory / f"losses-rank{rank}.jsonl").read_text().splitlines()
    return [sum(json.loads(line).values()) for line in lines]


@pytest.mark.parametrize("plugin", ["label_smoothing", "alignclip", "softclip"])
def test_two_processes_train_resume_and_match_one_process(
    plugin, synth_data, plugin_data_options, trainer, tmp_path
):
    command, run = trainer
    losses_dir = tmp_path / "losses"
    losses_dir.mkdir()

    def launch(dump, *extra, epochs=1):
        cmd = command(synth_data, tmp_path, "ddp", "--plugins", f"{plugin},batch_dump.plugin",
                      *plugin_data_options[plugin], *DDP, "--dump-first-batch", str(dump),
                      "--dump-state", *extra, samples=32, batch_size=8, epochs=epochs,
                      launcher=TORCHRUN)  # fmt: skip
        return run(cmd, threads=1, ALIGNCLIP_TEST_LOSS_LOG=str(losses_dir))

    first = tmp_path / "first.pt"
    launch(first)
    run_dir = tmp_path / "ddp"
    log = (run_dir / "out.log").read_text()
    assert "world_size: 2" in (run_dir / "params.txt").read_text()
    rows = logged_losses(log)
    assert len(rows) == 2 and all(math.isfinite(x) for r in rows for x in r.values())

    # step 0: two different halves of one global batch of 16 ...
    dumps = [torch.load(first), torch.load(f"{first}.rank1")]
    assert [d["image_features"].shape[0] for d in dumps] == [8, 8]
    assert not torch.equal(dumps[0]["batch.image"], dumps[1]["batch.image"])
    # ... and the ranks' local losses average to the one-process loss of that batch
    per_rank = [recorded_losses(losses_dir, r) for r in (0, 1)]
    assert len(per_rank[0]) == len(per_rank[1]) == 2
    want = global_loss(plugin, dumps)
    assert (per_rank[0][0] + per_rank[1][0]) / 2 == pytest.approx(want, rel=1e-5)
    assert rows[0]["Loss"] == pytest.approx(per_rank[0][0], rel=1e-4)  # what rank 0 logs

    # stop after the epoch, resume from its checkpoint for a second one
    ckpt = torch.load(run_dir / "checkpoints" / "epoch_1.pt", map_location="cpu")
    saved = {k.removeprefix("module."): v for k, v in ckpt["state_dict"].items()}
    resumed = tmp_path / "resumed.pt"
    launch(resumed, "--resume", "latest", epochs=2)
    log = (run_dir / "out.log").read_text()
    assert "resuming checkpoint" in log and (run_dir / "checkpoints" / "epoch_2.pt").is_file()
    after = logged_losses(log.split("resuming checkpoint")[1])
    assert len(after) == 2 and all(math.isfinite(x) for r in after for x in r.values())
    state = {k[len("state.") :]: v for k, v in torch.load(resumed).items() if k[:6] == "state."}
    assert state.keys() == saved.keys()
    for name, value in saved.items():
        assert torch.equal(state[name], value), name
    if plugin == "softclip":  # the ROI encoder was trained, saved and restored
        encoder = [k for k in saved if k.startswith("roi_encoder.")]
        assert encoder
        initial = dumps[0]
        assert any(not torch.equal(initial[f"state.{k}"], saved[k]) for k in encoder)
