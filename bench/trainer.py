"""Trainer throughput: upstream vs patched without plugins vs each plugin, side by side.

Runs ``python -m open_clip_train.main`` for each variant on the same webdataset shards
(the embedded synthetic data, generated if absent) with ``--dataset-resampled`` and
reports the median samples/s of the logged steps after warm-up, and each ratio to upstream.

    python bench/trainer.py --model ViT-B-32 --batch-size 256 --steps 60 --workers 8
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from alignclip_plugins.patching.importer import DISABLE_ENV
from alignclip_plugins.synthetic import SynthConfig, generate, load_manifest

VARIANTS = {
    "upstream (unpatched)": ([], {DISABLE_ENV: "1"}),
    "patched, no plugins": ([], {}),
    "--plugins label_smoothing": (["--plugins", "label_smoothing"], {}),
}
RATE = re.compile(r"Batch \(t\): [\d.]+, ([\d.]+)/s,")


def run(variant: str, args, data: Path, logs: Path) -> list[float]:
    extra, env = VARIANTS[variant]
    manifest = load_manifest(data)
    cmd = [
        sys.executable, "-m", "open_clip_train.main",
        "--model", args.model, "--train-data", str(data / manifest["splits"]["train"]["pattern"]),
        "--train-num-samples", str(args.steps * args.batch_size), "--dataset-type", "webdataset",
        "--dataset-resampled", "--batch-size", str(args.batch_size), "--epochs", "1",
        "--workers", str(args.workers), "--precision", args.precision, "--log-every-n-steps", "1",
        "--logs", str(logs), "--name", re.sub(r"\W+", "_", variant), "--save-frequency", "0",
        "--report-to", "", "--seed", "0", *extra,
    ]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **env})
    if proc.returncode != 0:
        raise RuntimeError(f"{variant} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    rates = [float(m) for m in RATE.findall(proc.stdout + proc.stderr)]
    return rates[args.warmup :]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-32")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=10, help="logged steps to drop")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--precision", default="amp")
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument(
        "--repeats", type=int, default=2, help="rounds over the variants, interleaved"
    )
    args = parser.parse_args()
    try:
        load_manifest(args.data)
    except FileNotFoundError:
        generate(args.data, SynthConfig(), progress=False)
    rates: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with tempfile.TemporaryDirectory() as logs:
        for r in range(args.repeats):
            for variant in VARIANTS:
                rates[variant] += run(variant, args, args.data, Path(logs) / f"r{r}")
    base = statistics.median(rates["upstream (unpatched)"])
    print(f"model {args.model}, batch {args.batch_size}, {args.precision}, {args.workers} workers, "
          f"{args.steps} steps x {args.repeats} rounds (median of steps after {args.warmup})")  # fmt: skip
    print("| variant | samples/s | ratio to upstream |\n|---|---|---|")
    for variant, values in rates.items():
        median = statistics.median(values)
        print(f"| {variant} | {median:.1f} | {median / base:.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
