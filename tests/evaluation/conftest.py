"""Fixtures for the evaluation tests: tiny checkpoints (ours and plain) and image writers."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from alignclip_plugins.model_configs import model_arg

#: A tiny ResNet tower (ModifiedResNet) for the Grad-CAM tests, written by the test.
TINY_RN = {
    "model_cfg": {
        "embed_dim": 32,
        "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 16},
        "text_cfg": {
            "context_length": 32,
            "vocab_size": 49408,
            "width": 64,
            "heads": 2,
            "layers": 1,
        },
    },
    "preprocess_cfg": {
        "mean": [0.48145466, 0.4578275, 0.40821073],
        "std": [0.26862954, 0.26130258, 0.27577711],
    },
}


def _random_state_dict(model_name: str, seed: int) -> dict[str, torch.Tensor]:
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, load_weights=False)
    return model.state_dict()


@pytest.fixture(scope="session")
def tiny_model() -> str:
    return model_arg()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, tiny_model) -> Path:
    """``<logs>/run-a/checkpoints/epoch_3.pt``: this project's checkpoint (DDP ``module.``
    prefix, an ``roi_encoder`` plugin module) inside a run with a params.txt."""
    logs = tmp_path_factory.mktemp("logs")
    run = logs / "run-a"
    (run / "checkpoints").mkdir(parents=True)
    sd = _random_state_dict(tiny_model, seed=0)
    sd["roi_encoder.proj.weight"] = torch.randn(4, 4)
    sd["roi_encoder.cls"] = torch.randn(4)
    torch.save(
        {"epoch": 3, "name": "run-a", "state_dict": {f"module.{k}": v for k, v in sd.items()}},
        run / "checkpoints" / "epoch_3.pt",
    )
    (run / "params.txt").write_text(
        f"batch_size: 64\nforce_quick_gelu: False\nforce_image_size: None\nmodel: {tiny_model}\n"
        f"plugins: ['softclip']\n"
    )
    return run / "checkpoints" / "epoch_3.pt"


@pytest.fixture(scope="session")
def plain_checkpoint(tmp_path_factory, tiny_model) -> Path:
    """A bare open_clip state dict (another random init), outside any run."""
    path = tmp_path_factory.mktemp("plain") / "weights.pt"
    torch.save(_random_state_dict(tiny_model, seed=1), path)
    return path


@pytest.fixture(scope="session")
def tiny_rn(tmp_path_factory) -> str:
    """``local-dir:`` model name of a tiny ResNet CLIP."""
    root = tmp_path_factory.mktemp("rn") / "RN-Test"
    root.mkdir()
    (root / "open_clip_config.json").write_text(json.dumps(TINY_RN))
    return f"local-dir:{root}"


def noise_image(seed: int, size: tuple[int, int] = (64, 64)) -> Image.Image:
    """A reproducible random image: coarse colour blocks, so that distinct seeds embed apart."""
    rng = np.random.default_rng(seed)
    w, h = size
    blocks = rng.integers(0, 256, size=(max(1, h // 8), max(1, w // 8), 3), dtype=np.uint8)
    return Image.fromarray(blocks).resize((w, h), Image.NEAREST)


@pytest.fixture
def write_image():
    """``write_image(path, seed_or_image, size=(64, 64))``: save a JPEG (4:4:4, quality 95)."""

    def write(path: Path, image: int | Image.Image, size=(64, 64)) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(image, int):
            image = noise_image(image, size)
        image.save(path, quality=95, subsampling=0)
        return path

    return write


@pytest.fixture
def run_eval(capsys):
    """``run_eval(*argv) -> (exit code, stdout, stderr)`` of ``alignclip eval`` in-process."""
    from alignclip_plugins.evaluation.cli import main

    def run(*argv) -> tuple[int, str, str]:
        code = main([str(a) for a in argv])
        out = capsys.readouterr()
        return code, out.out, out.err

    return run


@pytest.fixture
def write_cb_wds():
    """``write_cb_wds(root, samples, classnames=None, templates=None, split="test",
    per_shard=None)``: clip_benchmark's webdataset layout, as its ``convert_dataset`` writes it
    (``ROOT/<split>/{0..}.tar`` + ``nshards.txt``, ``classnames.txt``,
    ``zeroshot_classification_templates.txt``; ``dataset_type.txt`` = retrieval when the
    targets are caption lists). ``samples``: ``[(PIL image, int label or [captions])]``."""
    import io

    import webdataset

    def write(root: Path, samples, classnames=None, templates=None, split="test", per_shard=None):
        (root / split).mkdir(parents=True, exist_ok=True)
        retrieval = isinstance(samples[0][1], list)
        sink = webdataset.ShardWriter(
            str(root / split / "%d.tar"), maxcount=per_shard or len(samples), verbose=0
        )
        for i, (image, target) in enumerate(samples):
            buf = io.BytesIO()
            image.save(buf, format="png")
            sample = {"__key__": f"s{i:07d}", "png": buf.getvalue()}
            sample["txt" if retrieval else "cls"] = "\n".join(target) if retrieval else target
            sink.write(sample)
        shards = sink.shard
        sink.close()
        (root / split / "nshards.txt").write_text(f"{shards}\n")
        if retrieval:
            (root / "dataset_type.txt").write_text("retrieval\n")
        if classnames:
            (root / "classnames.txt").write_text("\n".join(classnames) + "\n")
        if templates:
            (root / "zeroshot_classification_templates.txt").write_text("\n".join(templates) + "\n")
        return root

    return write


@pytest.fixture
def noise():
    """``noise(seed, size=(64, 64)) -> PIL image`` (see :func:`noise_image`)."""
    return noise_image


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One intra-op thread: on a shared 2-core machine, OpenMP threads spin against other
    processes and tiny models run many times slower with 2 threads than with 1."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
