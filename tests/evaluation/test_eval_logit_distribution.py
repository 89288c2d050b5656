"""``alignclip eval logit-distribution`` (SoftCLIP Fig. 6) for two checkpoints side by side."""

import math

import pytest
import torch

from alignclip_plugins.evaluation.logit_distribution import profile
from alignclip_plugins.evaluation.results import read_result
from alignclip_plugins.evaluation.retrieval import Embeddings


def test_profile_known_values():
    # one caption, three images with similarities 0, ln 3 / 2, 0 at logit scale 2
    emb = Embeddings(
        torch.eye(3),
        torch.tensor([[0.0, math.log(3) / 2, 0.0]]),
        torch.tensor([1]),
        ["c"],
        ["a", "b", "c"],
    )
    assert profile(emb, 2.0, top=2) == pytest.approx([0.6, 0.2])
    assert profile(emb, 0.0, top=50) == pytest.approx([1 / 3] * 3)  # scale 0: uniform, N < top


def test_two_checkpoints_side_by_side(
    synth_data, tiny_run, plain_checkpoint, tiny_model, tmp_path, run_eval
):
    uniform = tmp_path / "uniform" / "flat.pt"
    uniform.parent.mkdir()
    sd = torch.load(plain_checkpoint)
    sd["logit_scale"] = torch.tensor(float("-inf"))  # exp(-inf) = 0: every image equally likely
    torch.save(sd, uniform)
    code, out, err = run_eval(
        "logit-distribution", "--checkpoint", tiny_run, uniform, "--model", tiny_model,
        "--label", "soft", "flat", "--data", synth_data / "retrieval", "--workers", 0,
    )  # fmt: skip
    assert code == 0, err
    flat = read_result(tmp_path / "uniform" / "flat.evals" / "logit-distribution-retrieval.json")
    assert [flat.metrics[f"prob@{r}"] for r in range(1, 51)] == pytest.approx([1 / 64] * 50)
    assert flat.details["logit_scale"] == 0.0
    soft = read_result(tiny_run.parent.parent / "evals" / "logit-distribution-retrieval.json")
    curve = [soft.metrics[f"prob@{r}"] for r in range(1, 51)]
    assert curve == sorted(curve, reverse=True) and curve[0] > 1 / 64 and sum(curve) < 1
    assert soft.details["logit_scale"] == pytest.approx(math.exp(math.log(1 / 0.07)), rel=1e-5)
    png = tiny_run.parent.parent / "evals" / "logit-distribution-retrieval.png"
    assert png.stat().st_size > 1000 and soft.artifacts == flat.artifacts == [str(png)]
    assert set(soft.details["curves"]) == {"soft", "flat"}
    assert "| soft |" in out and "| flat |" in out
