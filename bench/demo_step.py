"""Where a demo training step's CPU goes: the data loader's stages vs forward / backward / AdamW.

The demo trains on 2 cores with two one-thread trainings side by side, and each training's
data-loader worker is a third and fourth process on the same cores, so every millisecond
the loader spends per sample is taken from the steps. This measures, in one process with
one thread and in interleaved rounds (so that any other load on the machine hits every part
alike), the CPU time (``time.process_time``) of

- the loader's per-sample work as the trainer does it: reading the sample out of its tar
  shard, decoding the stored image (PNG, as ``alignclip synth`` writes it; and the same
  pixels re-encoded as JPEG quality 95, for comparison), the model's training transform
  (``RandomResizedCrop`` + normalise), tokenising the caption;
- one training step of hard CLIP on a batch: forward + loss, backward, AdamW;

for each ``--models`` (open_clip names or ``local-dir:`` paths; default the demo's) at each
``--image-sizes`` (the model built with ``force_image_size``; the stored images are resized
by the transform). Prints Markdown (docs/benchmarks.md, "The demo's training step")::

    python bench/demo_step.py --data data/synthetic --image-sizes 64,48,32
    python bench/demo_step.py --data data/synthetic --models local-dir:/tmp/old,<demo's>
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

import torch

from alignclip_plugins.model_configs import DEMO, model_arg
from alignclip_plugins.synthetic import SynthConfig, generate, load_manifest

DEMO_MODEL = model_arg(DEMO)  # the demo's (recipes/conf/model/demo.yaml)


def cpu_ms(fn) -> float:
    """CPU milliseconds of one call of ``fn``."""
    start = time.process_time()
    fn()
    return 1e3 * (time.process_time() - start)


def read_samples(data: Path, n: int) -> tuple[list[dict], float]:
    """``n`` raw training samples (bytes per member) and the CPU ms per sample to read them."""
    import webdataset as wds

    manifest = load_manifest(data)
    urls = str(data / manifest["splits"]["train"]["pattern"])
    samples: list[dict] = []
    start = time.process_time()
    for sample in wds.WebDataset(urls, shardshuffle=False):
        samples.append(sample)
        if len(samples) == n:
            break
    per_sample = 1e3 * (time.process_time() - start) / len(samples)
    if len(samples) < n:
        raise SystemExit(f"error: {data} holds only {len(samples)} training samples (< {n})")
    return samples, per_sample


def time_step(model, loss, opt, images, tokens, args) -> tuple[float, float, float]:
    """Median CPU ms of hard CLIP's forward + loss, backward and AdamW step on one batch."""
    out = {}

    def forward():
        image_features, text_features, logit_scale = model(images, tokens)
        out["loss"] = loss(image_features, text_features, logit_scale)

    def backward():
        opt.zero_grad(set_to_none=True)
        out["loss"].backward()

    for _ in range(args.warmup):
        forward(), backward(), opt.step()
    fwd = [cpu_ms(forward) for _ in range(args.steps)]
    bwd, step = [], []
    for _ in range(args.steps):  # each backward needs a forward of its own, not timed
        forward()
        bwd.append(cpu_ms(backward))
        step.append(cpu_ms(opt.step))
    return statistics.median(fwd), statistics.median(bwd), statistics.median(step)


def measure(args) -> dict:
    import open_clip
    from PIL import Image

    from alignclip_plugins.captions.choice import caption_lines

    torch.set_num_threads(1)
    samples, read = read_samples(args.data, args.samples)
    pngs = [s["png"] for s in samples]
    texts = [caption_lines(s["txt"].decode())[0] for s in samples]
    pils = [Image.open(io.BytesIO(b)).convert("RGB") for b in pngs]
    jpegs = []
    for im in pils:
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=95)
        jpegs.append(buf.getvalue())

    def decode(blobs):
        return lambda: [Image.open(io.BytesIO(b)).convert("RGB").load() for b in blobs]

    models = [m.strip() for m in args.models.split(",") if m.strip()]
    sizes = [int(s) for s in args.image_sizes.split(",")]
    tokenizers = {m: open_clip.get_tokenizer(m) for m in models}
    setups = {}
    for name in models:
        for size in sizes:
            torch.manual_seed(0)
            model, preprocess, _ = open_clip.create_model_and_transforms(
                name, force_image_size=size
            )
            loss = open_clip.ClipLoss()
            opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)
            images = torch.stack([preprocess(im) for im in pils[: args.batch_size]])
            tokens = tokenizers[name](texts[: args.batch_size])
            setups[name, size] = (model, preprocess, loss, opt, images, tokens)

    results: dict[str, list[float]] = {}

    def add(key: str, value: float) -> None:
        results.setdefault(key, []).append(value)

    n = len(samples)
    for _ in range(args.rounds):
        add("decode png", cpu_ms(decode(pngs)) / n)
        add("decode jpeg", cpu_ms(decode(jpegs)) / n)
        for name, tokenizer in tokenizers.items():
            add(f"tokenize {name}", cpu_ms(lambda t=tokenizer: [t([x]) for x in texts]) / n)
        for (name, size), (model, preprocess, loss, opt, images, tokens) in setups.items():
            key = f"{name} {size}"
            add(f"transform {key}", cpu_ms(lambda p=preprocess: [p(im) for im in pils]) / n)
            fwd, bwd, step = time_step(model, loss, opt, images, tokens, args)
            add(f"forward {key}", fwd)
            add(f"backward {key}", bwd)
            add(f"adamw {key}", step)
    stats = {k: statistics.median(v) for k, v in results.items()}
    stats["read"] = read
    params = {m: sum(p.numel() for p in setups[m, sizes[0]][0].parameters()) for m in models}
    return {"models": models, "sizes": sizes, "params": params, "stats": stats}


def report(args, measured: dict) -> str:
    s, b = measured["stats"], args.batch_size
    lines = [
        f"batch {b}, one thread, CPU ms (`time.process_time`), median of {args.rounds} "
        "interleaved rounds",
        "",
        "| model | image side | loader per sample (read + decode + transform + tokenize) | "
        "loader per step | forward | backward | AdamW | step | loader share of the CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in measured["models"]:
        shown = f"{name.rsplit('/', 1)[-1]} ({measured['params'][name] / 1e6:.2f} M parameters)"
        for size in measured["sizes"]:
            key = f"{name} {size}"
            tokenize = s[f"tokenize {name}"]
            per_sample = s["read"] + s["decode png"] + s[f"transform {key}"] + tokenize
            loader = b * per_sample
            step = s[f"forward {key}"] + s[f"backward {key}"] + s[f"adamw {key}"]
            lines.append(
                f"| {shown} | {size} px | {per_sample:.2f} ms ({s['read']:.2f} + "
                f"{s['decode png']:.2f} + {s[f'transform {key}']:.2f} + {tokenize:.2f}) "
                f"| {loader:.0f} ms | {s[f'forward {key}']:.0f} ms "
                f"| {s[f'backward {key}']:.0f} ms | {s[f'adamw {key}']:.0f} ms | {step:.0f} ms "
                f"| {100 * loader / (loader + step):.0f}% |"
            )
    lines += [
        "",
        f"Decoding the same pixels stored as JPEG (quality 95): {s['decode jpeg']:.2f} ms a "
        f"sample vs PNG {s['decode png']:.2f} ms.",
    ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument(
        "--models", default=DEMO_MODEL, help="comma-separated models, measured interleaved"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=512, help="loader samples a round")
    parser.add_argument("--image-sizes", default="64")
    parser.add_argument("--steps", type=int, default=5, help="timed steps a round and size")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.batch_size > args.samples:
        parser.error("--batch-size must not exceed --samples")
    try:
        load_manifest(args.data)
    except FileNotFoundError:
        generate(args.data, SynthConfig(), progress=False)
    print(report(args, measure(args)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
