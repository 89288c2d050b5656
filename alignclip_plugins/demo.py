"""``alignclip demo``: hard CLIP and each plugin trained side by side on the embedded data.

Every method runs the stock trainer, ``python -m open_clip_train.main``, with the same
budget and seed, then its final checkpoint is evaluated on the held-out splits: zero-shot
top-1 / top-5 / tail-class top-1 with prompt-template prototypes, top-1 / tail top-1 with
visual-description prototypes, and image<->text retrieval R@1. What a method needs besides
the shards (e.g. AlignCLIP's object sidecars) is prepared once under ``OUT/prepared``.
Finished runs, preparations and evaluations are reused on a rerun, and an interrupted run
resumes from its last epoch.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from alignclip_plugins.model_configs import model_arg

# AlignCLIP's inputs prepared from the embedded data (see PREPARE below)
_OBJECTS = ["--alignclip-objects", "{objects}", "--alignclip-vocabulary", "{object_vocabulary}"]
# SoftCLIP's ROI features and tags from the embedded data's oracle detector
_SOFTCLIP = ["--plugins", "softclip", "--softclip-rois", "{rois}"]

# method name -> extra trainer arguments. "{name}" is replaced by the path PREPARE[name]
# prepares ("{data}": the dataset directory); later issues add their methods here.
METHODS: dict[str, list[str]] = {
    "clip": [],
    "label_smoothing": ["--plugins", "label_smoothing"],
    "object_iou": ["--plugins", "alignclip", *_OBJECTS],
    "alignclip": [
        "--plugins", "alignclip", *_OBJECTS,
        "--alignclip-domains", "0.5,0.25,0.25",
        "--alignclip-descriptions", "{data}/descriptions.json",
    ],
    # SoftCLIP (Table 6 rows, then Table 10's ROI aggregation modes; "softclip" is MHSA)
    "softclip_soft": [*_SOFTCLIP, "--no-softclip-relation-enhanced", "--no-softclip-symmetric"],
    "softclip_relation": [*_SOFTCLIP, "--no-softclip-symmetric"],
    "softclip": _SOFTCLIP,
    "softclip_mean": [*_SOFTCLIP, "--softclip-roi-encoder", "mean"],
    "softclip_max": [*_SOFTCLIP, "--softclip-roi-encoder", "max"],
    "softclip_min": [*_SOFTCLIP, "--softclip-roi-encoder", "min"],
}  # fmt: skip

# what a plain `alignclip demo` (`tox -e demo`) trains: one row per method, the ablations
# (softclip_soft, softclip_relation, softclip_mean/max/min) on request or with `--methods all`
DEFAULT_METHODS = ("clip", "label_smoothing", "object_iou", "alignclip", "softclip")

METRICS = (
    ("zeroshot_top1", "zero-shot top-1"),
    ("zeroshot_top5", "top-5"),
    ("zeroshot_tail_top1", "tail top-1"),
    ("zeroshot_colour_top1", "colour top-1"),
    ("zeroshot_shape_top1", "shape top-1"),
    ("zeroshot_desc_top1", "desc. top-1"),
    ("zeroshot_desc_tail_top1", "desc. tail top-1"),
    ("image_to_text_R@1", "I→T R@1"),
    ("text_to_image_R@1", "T→I R@1"),
)


def prepare_objects(data: Path, work: Path, manifest: dict) -> Path:
    """Object sidecars of the training shards (``alignclip objects parse --parser vocab`` with
    the dataset's ``vocabulary.json``); finished shards are skipped on a rerun."""
    from alignclip_plugins.objects.captions import expand_inputs
    from alignclip_plugins.objects.run import parse_inputs
    from alignclip_plugins.objects.vocabulary import VocabParser

    out = work / "objects"
    inputs = expand_inputs([str(data / manifest["splits"]["train"]["pattern"])])
    parse_inputs(inputs, VocabParser(data / "vocabulary.json"), out, progress=False)
    return out


def prepare_object_vocabulary(data: Path, work: Path, manifest: dict) -> Path:
    """The object vocabulary with frequencies and tail (``alignclip objects stats``)."""
    from alignclip_plugins.objects.stats import build_vocabulary, count_objects, write_vocabulary

    objects = prepare_objects(data, work, manifest)
    out = work / "object-vocabulary.json"
    newest = max(p.stat().st_mtime for p in objects.glob("*.objects.jsonl"))
    if not out.is_file() or out.stat().st_mtime < newest:
        write_vocabulary(out, build_vocabulary(count_objects([objects])))
    return out


def prepare_rois(data: Path, work: Path, manifest: dict) -> Path:
    """SoftCLIP's ROI sidecars of the training shards from the oracle detector
    (``alignclip rois oracle``); finished shards are skipped on a rerun."""
    from alignclip_plugins.rois.oracle import write_oracle_rois

    out = work / "rois"
    write_oracle_rois(data, out=out, splits=("train",), progress=False)
    return out


# placeholder -> preparation(data dir, work dir, manifest) -> path; run only when a chosen
# method's arguments use the placeholder
PREPARE: dict[str, Callable[[Path, Path, dict], Path]] = {
    "objects": prepare_objects,
    "object_vocabulary": prepare_object_vocabulary,
    "rois": prepare_rois,
}

_PLACEHOLDER = re.compile(r"\{(\w+)\}")


def method_arguments(
    method: str, data: Path, work: Path, manifest: dict, prepared: dict[str, Path] | None = None
) -> list[str]:
    """``METHODS[method]`` with its placeholders replaced (preparing what they name)."""
    prepared = {} if prepared is None else prepared

    def path(match: re.Match) -> str:
        name = match.group(1)
        if name == "data":
            return str(data)
        if name not in PREPARE:
            raise KeyError(f"method {method!r}: unknown placeholder {{{name}}} in METHODS")
        if name not in prepared:
            prepared[name] = PREPARE[name](data, work, manifest)
        return str(prepared[name])

    return [_PLACEHOLDER.sub(path, arg) for arg in METHODS[method]]


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


def write_text(path: Path, text: str) -> None:
    """Atomic write: a crash never leaves a half-written file."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_json(path: Path, obj) -> None:
    """Atomic JSON write."""
    write_text(path, json.dumps(obj, indent=2) + "\n")


def train_command(
    method: str,
    data: Path,
    manifest: dict,
    logs: Path,
    seed: int,
    budget: Budget,
    prepared: dict[str, Path] | None = None,
) -> list[str]:
    """The exact ``python -m open_clip_train.main`` command of one demo run.

    What the method needs is prepared under ``logs/prepared`` (``prepared`` caches paths).
    """
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
    work = logs / "prepared"
    return cmd + method_arguments(method, data, work, manifest, prepared) + budget.extra


def run_name(method: str, seed: int) -> str:
    return f"{method}-seed{seed}"


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


_PROGRESS = re.compile(r"Train Epoch: (\d+) \[\s*(\d+)/(\d+)")


def train(
    method: str,
    data: Path,
    manifest: dict,
    logs: Path,
    seed: int,
    budget: Budget,
    prepared: dict[str, Path] | None = None,
) -> Path:
    """Train one run (or resume / reuse it); returns its final checkpoint."""
    run = logs / run_name(method, seed)
    final = run / "checkpoints" / f"epoch_{budget.epochs}.pt"
    if final.is_file():
        return final
    cmd = train_command(method, data, manifest, logs, seed, budget, prepared)
    recorded = run / "demo-command.json"
    if recorded.is_file():
        before = [a for a in json.loads(recorded.read_text()) if a not in ("--resume", "latest")]
        if before[1:] != cmd[1:]:
            raise RuntimeError(
                f"{run} holds a {method} run (seed {seed}) started with other arguments "
                f"({recorded}); use another --out, or delete {run} to start it afresh"
            )
    if run.exists():
        cmd += ["--resume", "latest"]
    run.mkdir(parents=True, exist_ok=True)
    write_json(recorded, cmd)
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


def class_attributes(names: list[str]) -> dict[str, list[int]]:
    """``{"colour": [...], "shape": [...]}``: each "<colour> <shape>" class's two parts as ids.

    Zero-shot top-1 on the embedded data needs both; the colour and shape accuracies of the
    top-1 class tell which of the two a model has learned (chance: 1/6 and 1/8).
    """
    parts = [name.rsplit(" ", 1) for name in names]
    if any(len(p) != 2 for p in parts):
        raise ValueError(f"class names must read '<colour> <shape>', got {names!r}")
    out = {}
    for i, attribute in enumerate(("colour", "shape")):
        values = list(dict.fromkeys(p[i] for p in parts))
        out[attribute] = [values.index(p[i]) for p in parts]
    return out


def evaluate(checkpoint: Path, data: Path, manifest: dict, tag: str = "") -> dict[str, float]:
    """Zero-shot and retrieval metrics of one checkpoint on ``data``'s held-out splits.

    Cached next to the checkpoint as ``<stem>-demo-eval[-<tag>].json`` (``tag`` names an
    evaluation set other than the training data's, see ``eval_set``).
    """
    out = checkpoint.with_name(
        checkpoint.stem + "-demo-eval" + (f"-{tag}" if tag else "") + ".json"
    )
    if out.is_file() and out.stat().st_mtime >= checkpoint.stat().st_mtime:
        cached = json.loads(out.read_text())
        if all(key in cached for key, _ in METRICS):
            return cached
    import torch

    from alignclip_plugins.descriptions.generate import load_descriptions
    from alignclip_plugins.evaluation import retrieval, zeroshot
    from alignclip_plugins.evaluation.checkpoint import load_clip
    from alignclip_plugins.evaluation.prototypes import class_prompts

    device = "cuda" if torch.cuda.is_available() else "cpu"
    model, preprocess, tokenizer = load_clip(model_arg(), checkpoint, device)
    classes = json.loads((data / "classes.json").read_text())
    zeroshot_urls = str(data / manifest["splits"]["zeroshot"]["pattern"])
    zs = zeroshot.evaluate(
        model, preprocess, tokenizer, zeroshot_urls, classes["names"], tail=classes["tail"],
        attributes=class_attributes(classes["names"]), device=device,
    )  # fmt: skip
    described = class_prompts(
        classes["names"], "descriptions", descriptions=load_descriptions(data / "descriptions.json")
    )
    zs_desc = zeroshot.evaluate(
        model, preprocess, tokenizer, zeroshot_urls, classes["names"], prompts=described,
        tail=classes["tail"], device=device,
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
        "zeroshot_colour_top1": zs["colour_top1"],
        "zeroshot_shape_top1": zs["shape_top1"],
        "zeroshot_desc_top1": zs_desc["top1"],
        "zeroshot_desc_tail_top1": zs_desc.get("tail_top1", float("nan")),
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


def eval_set(data: Path, manifest: dict, eval_data: Path) -> tuple[str, dict]:
    """``(tag, manifest)`` of the evaluation set: tag "" for the training data's own, else a
    hash of its generator options. Its classes must be the training data's (same seed)."""
    if eval_data.resolve() == data.resolve():
        return "", manifest
    from alignclip_plugins.synthetic import load_manifest

    try:
        manifest = load_manifest(eval_data)
    except FileNotFoundError:
        raise SystemExit(
            f"--eval-data {eval_data}: no embedded dataset there; write one with the training "
            f"data's seed, e.g. 'alignclip synth --out {eval_data} --zeroshot-per-class 100 "
            "--retrieval-samples 1024'"
        ) from None
    if (eval_data / "classes.json").read_bytes() != (data / "classes.json").read_bytes():
        raise SystemExit(
            f"--eval-data {eval_data}: its classes.json differs from {data / 'classes.json'}; "
            "generate it with the same --seed (and class options) as the training data"
        )
    options = json.dumps({k: manifest[k] for k in ("seed", "options")}, sort_keys=True)
    return "eval" + hashlib.sha1(options.encode()).hexdigest()[:8], manifest


def parse_methods(text: str) -> list[str]:
    """``--methods``: comma-separated names of METHODS, or ``all``; unknown names raise."""
    methods = [m.strip() for m in text.split(",") if m.strip()]
    if methods == ["all"]:
        return list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown method(s) {unknown or text!r}; known: {', '.join(METHODS)}")
    return methods


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
        "--methods",
        default=",".join(DEFAULT_METHODS),
        help=f"comma-separated, or 'all'; from: {', '.join(METHODS)} "
        f"(default: {','.join(DEFAULT_METHODS)})",
    )
    parser.add_argument("--seeds", default="0", help="comma-separated training seeds, e.g. 0,1,2")
    parser.add_argument(
        "--eval-data",
        type=Path,
        help="evaluate on this embedded dataset's held-out splits instead (same generator seed, "
        "e.g. more zero-shot images: alignclip synth --zeroshot-per-class 100)",
    )
    parser.add_argument("--data-seed", type=int, default=0)
    for name, value in vars(Budget()).items():
        if name != "extra":
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    parser.add_argument(
        "trainer_args", nargs=argparse.REMAINDER, help="after '--': passed to every run"
    )
    args = parser.parse_args(argv)
    try:
        methods = parse_methods(args.methods)
    except ValueError as e:
        parser.error(str(e))
    seeds = [int(s) for s in args.seeds.split(",")]
    extra = args.trainer_args[1:] if args.trainer_args[:1] == ["--"] else args.trainer_args
    budget = Budget(
        args.epochs, args.batch_size, args.lr, args.wd, args.warmup, args.workers, extra
    )

    start = time.time()
    manifest = ensure_data(args.data, args.data_seed)
    eval_data = args.eval_data or args.data
    tag, eval_manifest = eval_set(args.data, manifest, eval_data)
    args.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[dict[str, float]]] = {}
    prepared: dict[str, Path] = {}
    for method in methods:
        for seed in seeds:
            checkpoint = train(
                method, args.data.resolve(), manifest, args.out.resolve(), seed, budget, prepared
            )
            results.setdefault(method, []).append(
                evaluate(checkpoint, eval_data, eval_manifest, tag)
            )
    table = summarise(results)
    elapsed = time.time() - start
    budget_line = (
        f"{budget.epochs} epochs x {manifest['splits']['train']['num_samples']} samples, "
        f"batch {budget.batch_size}, lr {budget.lr}; evaluated on {eval_data} "
        f"({eval_manifest['splits']['zeroshot']['num_samples']} zero-shot images, "
        f"{eval_manifest['splits']['retrieval']['num_samples']} retrieval pairs); "
        f"wall time {elapsed / 60:.1f} min"
    )
    stem = "demo-results" + (f"-{tag}" if tag else "")
    write_text(args.out / f"{stem}.md", table + "\n\n" + budget_line + "\n")
    write_json(
        args.out / f"{stem}.json",
        {"budget": vars(budget), "results": results, "seconds": elapsed},
    )
    print("\n" + table + "\n\n" + budget_line)
    return 0
