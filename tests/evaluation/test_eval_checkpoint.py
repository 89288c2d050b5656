import json

import pytest
import torch

from alignclip_plugins.evaluation.checkpoint import load_clip, load_model, read_run_params


def _same_weights(a: torch.nn.Module, b: dict[str, torch.Tensor]) -> bool:
    return all(torch.equal(v, b[k]) for k, v in a.state_dict().items())


def test_our_checkpoint_loads_with_plugin_modules_skipped(tiny_run, tiny_model, caplog):
    raw = torch.load(tiny_run, weights_only=False)["state_dict"]
    expected = {k[len("module.") :]: v for k, v in raw.items()}
    with caplog.at_level("INFO"):
        loaded = load_model(None, checkpoint=tiny_run)  # model name from the run's params.txt
    assert loaded.name == tiny_model and loaded.epoch == 3 and loaded.label == "run-a/epoch_3"
    assert _same_weights(loaded.model, expected)
    assert "roi_encoder" in caplog.text
    assert read_run_params(tiny_run)["plugins"] == ["softclip"]
    model, preprocess, tokenizer = load_clip(tiny_model, tiny_run)  # the demo's entry point
    assert _same_weights(model, expected) and tokenizer(["a cat"]).shape == (1, 32)


def test_plain_open_clip_state_dict(plain_checkpoint, tiny_model):
    loaded = load_model(tiny_model, checkpoint=plain_checkpoint)
    assert _same_weights(loaded.model, torch.load(plain_checkpoint))
    assert loaded.epoch is None and loaded.label == "weights"


def test_mismatches_are_errors(tmp_path, plain_checkpoint, tiny_model):
    sd = torch.load(plain_checkpoint)
    with pytest.raises(ValueError, match="pass --model"):
        load_model(None, checkpoint=plain_checkpoint)
    broken = dict(sd)
    del broken["visual.proj"]
    torch.save(broken, tmp_path / "missing.pt")
    with pytest.raises(ValueError, match=r"missing \['visual.proj'\]"):
        load_model(tiny_model, checkpoint=tmp_path / "missing.pt")
    torch.save({**sd, "visual.extra_block.weight": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="unexpected.*visual.extra_block"):
        load_model(tiny_model, checkpoint=tmp_path / "foreign.pt")
    torch.save({**sd, "visual.proj": torch.zeros(3, 3)}, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match="shape mismatch"):
        load_model(tiny_model, checkpoint=tmp_path / "shape.pt")
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(ValueError, match="could not be read"):
        load_model(tiny_model, checkpoint=tmp_path / "junk.pt")
    torch.save({"epoch": 1, "optimizer": {}}, tmp_path / "nosd.pt")
    with pytest.raises(ValueError, match="holds no state dict"):
        load_model(tiny_model, checkpoint=tmp_path / "nosd.pt")
    with pytest.raises(ValueError, match="cannot build model 'No-Such-Model'"):
        load_model("No-Such-Model", checkpoint=plain_checkpoint)


def test_pretrained_tags_that_are_not_available_say_so(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ValueError, match="not available locally|not a known tag"):
        load_model("RN50", pretrained="no-such-tag", cache_dir=str(tmp_path))


def test_clip_benchmark_runs_our_checkpoints_through_its_loader_seam(
    tiny_run, tmp_path, noise, write_cb_wds, tiny_model
):
    """clip_benchmark's own command line, model type ``alignclip``, on a checkpoint with
    plugin modules (a stock open_clip loader would refuse the extra keys)."""
    from alignclip_plugins.evaluation import benchmarks

    root = write_cb_wds(
        tmp_path / "tiny",
        [(noise(i), i % 3) for i in range(12)],
        classnames=["cat", "dog", "bird"],
        templates=["a photo of a {c}."],
    )
    out = tmp_path / "cb.json"
    code = benchmarks.main(
        ["eval", "--model_type", "alignclip", "--model", tiny_model, "--pretrained", str(tiny_run),
         "--dataset", "wds/tiny", "--dataset_root", str(root), "--task", "zeroshot_classification",
         "--output", str(out), "--num_workers", "0", "--batch_size", "8", "--no_amp", "--quiet"]
    )  # fmt: skip
    assert code == 0
    result = json.loads(out.read_text())
    assert result["pretrained"] == str(tiny_run) and 0.0 <= result["metrics"]["acc1"] <= 1.0
