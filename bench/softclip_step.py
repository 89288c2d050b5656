"""SoftCLIP throughput next to upstream open_clip, side by side in one process.

``step``: samples/s of one optimiser step (forward, loss, backward, AdamW) of

* upstream CLIP: ``model(images, texts)`` + ``open_clip.loss.ClipLoss``;
* SoftCLIP: the same forward, then the plugin's own ``roi_and_tag_features`` (the ROI
  encoder on 10 ROIs of 2052 values, the tag sentences through the text tower trimmed to
  the batch's longest, without autograd) and ``SoftClipLoss`` with its defaults (soft +
  relation-enhanced + CLIP + ROI-tag term);
* SoftCLIP with naive tags (``--naive``): tag sentences padded to the full context and
  encoded with autograd, i.e. one extra full-length text-tower forward and backward;

on random data (images, 77-token captions, tag sentences of 10 "attribute class" tags
tokenised by the model's tokenizer), with bf16 autocast on CUDA. Variants run in turns,
``--steps`` steps each, ``--rounds`` times; the median samples/s of the rounds is reported.

``loader``: samples/s of open_clip_train's webdataset pipeline with ONE worker, without
plugins and with ``--plugins softclip`` (its stage reads the memory-mapped ROI sidecar
and tokenises the tag sentence), on generated shards of 256 px JPEGs with 10 ROIs each.

GPU (H100), the issue's settings::

    python bench/softclip_step.py step --device cuda \\
        --configs RN50:512 ViT-B-16:512 ViT-B-32:1024 --naive
    python bench/softclip_step.py loader --samples 4000

CPU check of the script (tiny models): ``python bench/softclip_step.py step --device cpu``.
Needs only torch, open_clip, webdataset (loader) and this package (not installed is fine:
run it from the repository root).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time
from argparse import Namespace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

PLUGIN = "alignclip_plugins.plugins.softclip"  # dotted path: works without the entry point
ATTRIBUTES = (
    "white black blue red green brown yellow wooden metal large small tall young old "
    "orange pink grey dark silver glass plastic striped open round"
).split()
CLASSES = (
    "man woman person shirt tree sky building car table window hand head hair grass "
    "water wall plate street sign pole door light chair cloud leaves bag shadow jacket "
    "dog cat food road ground floor fence boat bottle flowers umbrella mountain"
).split()


def tag_sentences(n: int, rng: np.random.Generator, tags: int = 10) -> list[str]:
    """``n`` tag sentences of ``tags`` "attribute class" tags each."""
    out = []
    for _ in range(n):
        words = [
            f"{ATTRIBUTES[rng.integers(len(ATTRIBUTES))]} {CLASSES[rng.integers(len(CLASSES))]}"
            for _ in range(tags)
        ]
        out.append(", ".join(words))
    return out


# ---------------------------------------------------------------------------------------
# training step
# ---------------------------------------------------------------------------------------


def _model_name(name: str) -> str:
    if name in ("ViT-Tiny-64", "RN-Tiny-64"):
        from alignclip_plugins.model_configs import model_arg

        return model_arg(name)
    return name


def step_bench(args) -> list[dict]:
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # as open_clip_train does
        torch.backends.cudnn.allow_tf32 = True
    rows = []
    for config in args.configs:
        name, batch = config.rsplit(":", 1)
        rows += _bench_config(name, int(batch), args, device)
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return rows


def _bench_config(name: str, batch: int, args, device: torch.device) -> list[dict]:
    import open_clip
    from open_clip.loss import ClipLoss

    from alignclip_plugins.losses.softclip import SoftClipLoss
    from alignclip_plugins.plugins.softclip.features import roi_and_tag_features
    from alignclip_plugins.plugins.softclip.roi_encoder import build_roi_encoder
    from alignclip_plugins.plugins.softclip.stage import PadTokens, unpadded
    from alignclip_plugins.rois.storage import ROI_DIM

    amp = device.type == "cuda" and args.precision == "bf16"
    rows = []
    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = open_clip.create_model(_model_name(name), device=device, output_dict=True)
    model.add_module("roi_encoder", build_roi_encoder(model, ROI_DIM, "mhsa", 1).to(device))
    tokenizer = open_clip.get_tokenizer(_model_name(name))
    ctx = model.context_length
    size = model.visual.image_size
    size = size[0] if isinstance(size, tuple) else size
    images = torch.randn(batch, 3, size, size, device=device)
    lengths = rng.integers(8, ctx - 1, size=batch)  # caption lengths (full context runs)
    texts = torch.zeros(batch, ctx, dtype=torch.long)
    for i, n in enumerate(lengths):
        texts[i, 0] = 49406
        texts[i, 1:n] = torch.from_numpy(rng.integers(300, 49000, size=n - 1))
        texts[i, n] = 49407
    texts = texts.to(device)
    tags = tokenizer(tag_sentences(batch, rng))
    tag_text = PadTokens(0)([unpadded(t) for t in tags]).to(device)
    naive_tags = tags.to(device)
    batch_soft = {
        "image": images,
        "text": texts,
        "roi_features": torch.rand(batch, 10, ROI_DIM, device=device).half(),
        "roi_mask": torch.ones(batch, 10, dtype=torch.bool, device=device),
        "tag_text": tag_text,
    }
    plugin_args = Namespace(
        loss="softclip",
        softclip_roi_tag_weight=1.0,
        softclip_target_grad=False,
        softclip_tag_grad=False,
    )
    naive_args = Namespace(**{**vars(plugin_args), "softclip_tag_grad": True})
    clip_loss, soft_loss = ClipLoss(), SoftClipLoss()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, weight_decay=0.1)

    def autocast():
        return torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp)

    def upstream():
        with autocast():
            out = model(images, texts)
            loss = clip_loss(**out)
        return loss

    def softclip(naive=False):
        b = dict(batch_soft, tag_text=naive_tags) if naive else batch_soft
        with autocast():
            out = model(images, texts)
            out.update(
                roi_and_tag_features(model, b, naive_args if naive else plugin_args, pad_id=0)
            )
            loss = sum(soft_loss(**out, output_dict=True).values())
        return loss

    variants = {"upstream CLIP": upstream, "SoftCLIP": softclip}
    if args.naive:
        variants["SoftCLIP, naive tags"] = lambda: softclip(naive=True)

    def run(fn, steps):
        for _ in range(steps):
            opt.zero_grad(set_to_none=True)
            fn().backward()
            opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    model.train()
    for fn in variants.values():  # warm-up (and loss-kernel compilation), not timed
        run(fn, args.warmup)
    rates: dict[str, list[float]] = {k: [] for k in variants}
    for _ in range(args.rounds):
        for label, fn in variants.items():
            start = time.perf_counter()
            run(fn, args.steps)
            rates[label].append(args.steps * batch / (time.perf_counter() - start))
    base = statistics.median(rates["upstream CLIP"])
    for label, r in rates.items():
        med = statistics.median(r)
        rows.append(
            {
                "model": name,
                "batch": batch,
                "variant": label,
                "samples_s": med,
                "ratio": med / base,
                "tag_tokens": int(tag_text.shape[1])
                if label == "SoftCLIP"
                else (ctx if "naive" in label else 0),
            }  # fmt: skip
        )
        print(f"{name} batch {batch}: {label}: {med:.1f} samples/s ({med / base:.3f}x)",
              flush=True)  # fmt: skip
    return rows


# ---------------------------------------------------------------------------------------
# data loader
# ---------------------------------------------------------------------------------------


def _jpeg(rng: np.random.Generator, size: int) -> bytes:
    from PIL import Image

    low = rng.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)
    image = Image.fromarray(low).resize((size, size), Image.Resampling.BICUBIC)
    noise = rng.integers(-12, 13, size=(size, size, 3))
    pixels = np.clip(np.asarray(image, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def make_loader_data(root: Path, samples: int, shards: int, size: int) -> str:
    """Shards of JPEG + caption samples and their ROI sidecars (10 random ROIs each)."""
    from alignclip_plugins.rois.storage import ROI_DIM, SidecarWriter
    from alignclip_plugins.synthetic.writer import write_tar_atomic

    rng = np.random.default_rng(0)
    per = -(-samples // shards)
    for s in range(shards):
        keys = [f"{s:04d}{i:06d}" for i in range(min(per, samples - s * per))]
        members = []
        for key in keys:
            members.append((f"{key}.jpg", _jpeg(rng, size)))
            members.append((f"{key}.txt", b"a photo of something on a table near a window"))
        write_tar_atomic(root / f"bench-{s:06d}.tar", members)
        with SidecarWriter(root, f"bench-{s:06d}.tar", len(keys), source="bench") as w:
            for key, sentence in zip(keys, tag_sentences(len(keys), rng)):
                feats = rng.random((10, ROI_DIM), dtype=np.float32) * 4
                w.add(key, feats, rng.random(10), sentence.split(", "))
            w.commit()
    return str(root / f"bench-{{000000..{shards - 1:06d}}}.tar")


def loader_bench(args) -> list[dict]:
    from alignclip_plugins.patching import importer

    if not any(isinstance(f, importer.PatchFinder) for f in sys.meta_path):
        importer.install()  # not pip-installed: apply the patch to open_clip_train here
    import open_clip
    from open_clip_train.data import get_data
    from open_clip_train.params import parse_args

    with tempfile.TemporaryDirectory() as tmp:
        pattern = make_loader_data(Path(tmp), args.samples, args.shards, args.image_size)
        preprocess = open_clip.image_transform(224, is_train=True)
        tokenizer = open_clip.get_tokenizer("ViT-B-16")
        common = [
            "--train-data", pattern, "--train-num-samples", str(10**9), "--dataset-type",
            "webdataset", "--dataset-resampled", "--batch-size", str(args.batch_size),
            "--workers", "1", "--model", "ViT-B-16",
        ]  # fmt: skip
        variants = {
            "upstream (no plugins)": common,
            "--plugins softclip": [*common, "--plugins", PLUGIN, "--softclip-rois", tmp],
        }
        rates: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(args.rounds):
            for label, argv in variants.items():
                parsed = parse_args(argv)
                parsed.world_size, parsed.rank, parsed.distributed = 1, 0, False
                data = get_data(parsed, (preprocess, preprocess), 0, tokenizer)
                it = iter(data["train"].dataloader)
                next(it)  # worker start-up and the first batch are not timed
                start = time.perf_counter()
                for _ in range(args.batches):
                    next(it)
                rates[label].append(args.batches * args.batch_size / (time.perf_counter() - start))
                del it, data
    base = statistics.median(rates["upstream (no plugins)"])
    rows = []
    for label, r in rates.items():
        med = statistics.median(r)
        rows.append({"variant": label, "samples_s": med, "ratio": med / base})
        print(f"loader, 1 worker: {label}: {med:.1f} samples/s ({med / base:.3f}x)", flush=True)
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="part", required=True)
    step = sub.add_parser("step", help="training-step throughput")
    step.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    step.add_argument("--configs", nargs="+", default=None,
                      help="MODEL:BATCH (default: RN-Tiny-64:64 ViT-Tiny-64:64 on CPU; "
                      "RN50:512 ViT-B-16:512 ViT-B-32:1024 on CUDA)")  # fmt: skip
    step.add_argument("--precision", choices=("bf16", "fp32"), default="bf16",
                      help="bf16 autocast (CUDA only; CPU runs fp32)")  # fmt: skip
    step.add_argument("--steps", type=int, default=10, help="steps per timed round")
    step.add_argument("--rounds", type=int, default=3)
    step.add_argument("--warmup", type=int, default=3)
    step.add_argument("--naive", action="store_true",
                      help="also time SoftCLIP with full-context tags encoded with autograd")  # fmt: skip
    loader = sub.add_parser("loader", help="data-loader throughput, one worker")
    loader.add_argument("--samples", type=int, default=2000)
    loader.add_argument("--shards", type=int, default=4)
    loader.add_argument("--image-size", type=int, default=256)
    loader.add_argument("--batch-size", type=int, default=64)
    loader.add_argument("--batches", type=int, default=20)
    loader.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}; {os.cpu_count()} CPUs; "
          f"{torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}")  # fmt: skip
    if args.part == "step":
        if args.configs is None:
            args.configs = (
                ["RN50:512", "ViT-B-16:512", "ViT-B-32:1024"]
                if args.device.startswith("cuda")
                else ["RN-Tiny-64:64", "ViT-Tiny-64:64"]
            )
        step_bench(args)
    else:
        loader_bench(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
