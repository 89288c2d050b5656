"""``alignclip demo``: hard CLIP and each plugin trained side by side on the embedded data.

Every method runs the stock trainer, ``python -m open_clip_train.main``, with the same
budget and seed, then its final checkpoint is evaluated on the held-out splits: zero-shot
top-1 / top-5 / tail-class top-1 and image<->text retrieval R@1. Finished runs and
evaluations are reused on a rerun, and an interrupted run resumes from its last epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from alignclip_plugins.model_configs import model_arg

# method name -> extra trainer arguments (later issues add their methods here)
METHODS: dict[str, list[str]] = {
    "clip": [],
    "label_smoothing": ["--plugins", "label_smoothing"],
}

METRICS = (
    ("zeroshot_top1", "zero-shot top-1"),
    ("zeroshot_top5", "top-5"),
    ("zeroshot_tail_top1", "tail top-1"),
    ("image_to_text_R@1", "I→T R@1"),
    ("text_to_image_R@1", "T→I R@1"),
)


@dataclass
class Budget:
    """What every method gets: the same data, steps and optimiser settings."""

    epochs: int = 5
    batch_size: int = 64
    lr: float = 1e-3
    wd: float = 0.1
    warmup: int = 50
    workers: int = 1
    extra: list[str] = field(default_factory=list)


def write_json(path: Path, obj) -> None:
    """Atomic JSON write: a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def train_command(
    method: str, data: Path, manifest: dict, logs: Path, seed: int, budget: Budget
) -> list[str]:
    """The exact ``python -m open_clip_train.main`` command of one demo run."""
    train = manifest["splits"]["train"]
    cmd = [
        sys.executable, "-m", "open_clip_train.main",
        "--model", model_arg(),
        "--train-data", str(data / train["pattern"]),
        "--train-num-samples", str(train["num_samples"]),
        "--dataset-type", "webdataset",
        "--batch-size", str(budget.batch_size),
        "--epochs", str(budget.epochs),
        "--lr", str(budget.lr),
        "--wd", str(budget.wd),
        "--warmup", str(budget.warmup),
        "--workers", str(budget.workers),
        "--precision", "amp" if _cuda() else "fp32",
        "--seed", str(seed),
        "--logs", str(logs),
        "--name", run_name(method, seed),
        "--save-frequency", "1",
        "--delete-previous-checkpoint",
        "--log-every-n-steps", "10",
        "--report-to", "",
    ]  # fmt: skip
    return cmd + METHODS[method] + budget.extra


def run_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


_PROGRESS = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+)")


def train(method: str, data: Path, manifest: dict, logs: Path, seed: int, budget: Budget) -> Path:
    """Train one run (or resume / reuse it); returns its final checkpoint."""
    run = logs / run_name(method, seed)
    final = run / "checkpoints" / f"epoch_{budget.epochs}.pt"
    if final.is_file():
        return final
    cmd = train_command(method, data, manifest, logs, seed, budget)
    if run.exists():
        cmd += ["--resume", "latest"]
    run.mkdir(parents=True, exist_ok=True)
    write_json(run / "demo-command.json", cmd)
    total = budget.epochs * manifest["splits"]["train"]["num_samples"]
    log_path = run / "demo-stdout.log"
    bar = tqdm(total=total, desc=f"{method} seed {seed}", unit="sample", unit_scale=True)
    with (
        open(log_path, "a") as log,
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as proc,
    ):
        for line in proc.stdout:
            log.write(line)
            m = _PROGRESS.search(line)
            if m:
                epoch, seen, per_epoch = map(int, m.groups())
                bar.n = min(total, epoch * per_epoch + seen)
                bar.refresh()
    bar.close()
    if proc.returncode != 0 or not final.is_file():
        tail = "".join(log_path.read_text().splitlines(True)[-30:])
        raise RuntimeError(f"training {method} (seed {seed}) failed; see {log_path}:\n{tail}")
    return final


def evaluate(checkpoint: Path, data: Path, manifest: dict) -> dict[str, float]:
    """Zero-shot and retrieval metrics of one checkpoint (cached next to it)."""
    out = checkpoint.with_name(checkpoint.stem + "-demo-eval.json")
    if out.is_file() and out.stat().st_mtime >= checkpoint.stat().st_mtime:
        return json.loads(out.read_text())
    import torch

    from alignclip_plugins.evaluation import retrieval, zeroshot
    from alignclip_plugins.evaluation.checkpoint import load_clip

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, preprocess, tokenizer = load_clip(model_arg(), checkpoint, device)
    classes = json.loads((data / "classes.json").read_text())
    zs = zeroshot.evaluate(
        model, preprocess, tokenizer, str(data / manifest["splits"]["zeroshot"]["pattern"]),
        classes["names"], tail=classes["tail"], device=device,
    )  # fmt: skip
    rt = retrieval.evaluate(
        model,
        preprocess,
        tokenizer,
        str(data / manifest["splits"]["retrieval"]["pattern"]),
        device=device,
    )
    metrics = {
        "zeroshot_top1": zs["top1"],
        "zeroshot_top5": zs["top5"],
        "zeroshot_tail_top1": zs.get("tail_top1", float("nan")),
        **rt,
    }
    write_json(out, metrics)
    return metrics


def summarise(results: dict[str, list[dict[str, float]]]) -> str:
    """A Markdown table: mean ± std over seeds, in percent."""
    header = "| method | seeds | " + " | ".join(label for _, label in METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 2)]
    for method, runs in results.items():
        cells = []
        for key, _ in METRICS:
            values = [100 * r[key] for r in runs]
            spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
            cells.append(f"{statistics.fmean(values):.1f}{spread}")
        lines.append(f"| {method} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ensure_data(data: Path, seed: int) -> dict:
    from alignclip_plugins.synthetic import SynthConfig, generate, load_manifest

    try:
        return load_manifest(data)
    except FileNotFoundError:
        print(f"Generating the embedded dataset in {data} ...")
        return generate(data, SynthConfig(seed=seed))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="alignclip demo", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=Path("data/synthetic"),
        help="embedded data (generated if absent)",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("demo-runs"), help="training logs, checkpoints, results"
    )
    parser.add_argument(
        "--methods", default=",".join(METHODS), help=f"comma-separated, from: {', '.join(METHODS)}"
    )
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2")
    parser.add_argument("--data-seed", type=int, default=0)
    for name, value in vars(Budget()).items():
        if name != "extra":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument(
        "trainer_args", nargs=argparse.REMAINDER, help="after '--': passed to every run"
    )
    args = parser.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; known: {', '.join(METHODS)}")
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = args.trainer_args[1:] if args.trainer_args[:1] == ["--"] else args.trainer_args
    budget = Budget(
        args.epochs, args.batch_size, args.lr, args.wd, args.warmup, args.workers, extra
    )

    start = time.time()
    manifest = ensure_data(args.data, args.data_seed)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {}
    for method in methods:
        for seed in seeds:
            checkpoint = train(
                method, args.data.resolve(), manifest, args.out.resolve(), seed, budget
            )
            results.setdefault(method, []).append(evaluate(checkpoint, args.data, manifest))
    table = summarise(results)
    elapsed = time.time() - start
    budget_line = (
        f"{budget.epochs} epochs x {manifest['splits']['train']['num_samples']} samples, "
        f"batch {budget.batch_size}, lr {budget.lr}; wall time {elapsed / 60:.1f} min"
    )
    (args.out / "demo-results.md").write_text(table + "\n\n" + budget_line + "\n")
    write_json(
        args.out / "demo-results.json",
        {"budget": vars(budget), "results": results, "seconds": elapsed},
    )
    print("\n" + table + "\n\n" + budget_line)
    return 0
