"""Time and peak memory of the soft-label losses against upstream ``ClipLoss``.

Forward + backward of each loss module (world size 1, fp32 features, L2-normalised,
D = --dim) for each batch size N, with the ratio to upstream ``open_clip.loss.ClipLoss``
on the same inputs in the same process. Memory is the peak beyond the inputs:

* cuda: ``torch.cuda.max_memory_allocated`` minus the memory allocated before the call;
* cpu: each (loss, N) runs in a fresh subprocess (glibc mmap threshold pinned so freed
  blocks leave the resident set); peak RSS (``ru_maxrss``) minus the RSS after the inputs.

Usage::

    python bench/losses.py --device cpu --sizes 1024 2048 4096
    python bench/losses.py --device cuda --sizes 4096 8192 16384 32768 --tf32 both

Prints a Markdown table per setting (paste into docs/benchmarks.md). Upstream's
``loss.py`` is loaded from the installed ``open_clip`` by file, so only the wheel's files
are needed, not open_clip's dependencies.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss  # noqa: E402
from alignclip_plugins.losses.object_iou import ObjectIouLoss  # noqa: E402
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss  # noqa: E402
from alignclip_plugins.losses.softclip_alignclip import SoftClipAlignClipLoss  # noqa: E402


def upstream_clip_loss_class():
    """``open_clip.loss.ClipLoss`` from the installed wheel, without importing open_clip."""
    spec = importlib.util.find_spec("open_clip")
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(
            "open_clip is not installed (pip install --no-deps open_clip_torch==3.3.0)"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / "loss.py"
    mod_spec = importlib.util.spec_from_file_location("_upstream_open_clip_loss", path)
    module = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(module)
    return module.ClipLoss


class DirectSoftClip(torch.nn.Module):
    """SoftCLIP eq. 16 written directly with N x N matrices (what a naive port does)."""

    def forward(self, image_features, text_features, logit_scale, roi_features, tag_features, **_):
        s = logit_scale
        n = image_features.shape[0]
        eye = torch.eye(n, device=image_features.device, dtype=image_features.dtype)
        off = ~eye.bool()
        logits = s * image_features @ text_features.T
        lp_it, lp_ti = logits.log_softmax(1), logits.T.log_softmax(1)
        total = 0.5 * (-(lp_it.diagonal().mean()) - lp_ti.diagonal().mean())
        for lp, feats in ((lp_it, roi_features), (lp_ti, tag_features)):
            with torch.no_grad():
                q = (s.detach() * feats @ feats.T).softmax(1)
                t = 0.7 * eye + 0.3 * q
                ts = (t * off).reshape(-1)[off.reshape(-1)].reshape(n, n - 1)
                ts = ts / ts.sum(1, keepdim=True)
            p = lp.exp()
            total = total + 0.25 * ((t - p) * (t.log() - lp)).sum(1).mean()
            lps = lp.reshape(-1)[off.reshape(-1)].reshape(n, n - 1)
            lps = lps - lps.logsumexp(1, keepdim=True)
            total = total + 0.25 * ((ts - lps.exp()) * (ts.log() - lps)).sum(1).mean()
        return total


def losses() -> dict[str, Callable[[], torch.nn.Module]]:
    return {
        "ClipLoss (upstream)": lambda: upstream_clip_loss_class()(),
        "label-smoothing": lambda: LabelSmoothingLoss(alpha=0.2),
        "softclip (eq. 16)": lambda: SoftClipLoss(roi_tag_weight=0.0),
        "softclip + ROI-tag CLIP (w_rt=1)": lambda: SoftClipLoss(roi_tag_weight=1.0),
        "softclip js + target-grad": lambda: SoftClipLoss(
            divergence="js", target_grad=True, roi_tag_weight=0.0
        ),
        "softclip-guidance-mix (γ=0.5)": lambda: GuidanceMixLoss(gamma=0.5),
        "object-iou (β=0.5, M=5)": lambda: ObjectIouLoss(beta=0.5),
        "softclip-alignclip (ω=0.5, w_rt=0)": lambda: SoftClipAlignClipLoss(roi_tag_weight=0.0),
        "softclip direct (N x N, reference)": DirectSoftClip,
    }


def make_inputs(n: int, dim: int, device: torch.device, seed: int = 0) -> dict:
    g = torch.Generator(device="cpu").manual_seed(seed)

    def feats():
        x = torch.randn(n, dim, generator=g)
        return torch.nn.functional.normalize(x, dim=1).to(device).requires_grad_(True)

    def ids():
        pad = torch.rand(n, 5, generator=g) < 0.3
        return torch.randint(0, 1000, (n, 5), generator=g).masked_fill(pad, -1).to(device)

    return {
        "image_features": feats(),
        "text_features": feats(),
        "roi_features": feats(),
        "tag_features": feats(),
        "logit_scale": torch.tensor(30.0, device=device, requires_grad=True),
        "image_objects": ids(),
        "text_objects": ids(),
    }


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def step(loss: torch.nn.Module, inputs: dict) -> None:
    for v in inputs.values():
        v.grad = None
    out = loss(**inputs)
    out = sum(out.values()) if isinstance(out, dict) else out
    out.backward()


def _filter(loss, inputs):
    if type(loss).__name__ == "ClipLoss":
        return {k: inputs[k] for k in ("image_features", "text_features", "logit_scale")}
    return inputs


def measure_cuda(name: str, n: int, dim: int, repeats: int, device: torch.device) -> dict:
    inputs = make_inputs(n, dim, device)
    loss = losses()[name]()
    inputs = _filter(loss, inputs)
    try:
        step(loss, inputs)  # warm-up (allocator, kernels)
        for v in inputs.values():
            v.grad = None
        _sync(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        step(loss, inputs)
        _sync(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        times = []
        for _ in range(repeats):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step(loss, inputs)
            end.record()
            _sync(device)
            times.append(start.elapsed_time(end))
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"ms": None, "mb": None}
    finally:
        del inputs, loss
        torch.cuda.empty_cache()
    return {"ms": statistics.median(times), "mb": peak / 2**20}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_cpu_child(name: str, n: int, dim: int, repeats: int) -> dict:
    torch.set_num_threads(int(os.environ.get("BENCH_THREADS", torch.get_num_threads())))
    loss = losses()[name]()
    step(loss, _filter(loss, make_inputs(64, dim, torch.device("cpu"))))  # lazy init, thread pools
    inputs = _filter(loss, make_inputs(n, dim, torch.device("cpu")))
    base = _rss_bytes()
    step(loss, inputs)  # first run: peak memory
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step(loss, inputs)
        times.append((time.perf_counter() - t0) * 1e3)
    return {"ms": min(times), "mb": max(peak, 0) / 2**20}


def measure_cpu(name: str, n: int, dim: int, repeats: int) -> dict:
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    cmd = [
        sys.executable,
        __file__,
        "--child",
        name,
        "--sizes",
        str(n),
        "--dim",
        str(dim),
        "--repeats",
        str(repeats),
    ]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def verify(device: torch.device, n: int, dim: int) -> list[str]:
    """Max relative difference of values and gradients: current kernels vs eager kernels."""
    from alignclip_plugins.losses import functional as Fn

    lines = []
    for name, make in losses().items():
        if "upstream" in name or "direct" in name:
            continue
        results = []
        for mode in (None, "eager"):
            previous = Fn.set_kernel_mode(mode) if mode else None
            try:
                inputs = make_inputs(n, dim, device, seed=1)
                step(make(), inputs)
                results.append(
                    [
                        v.grad
                        for v in inputs.values()
                        if v.dtype.is_floating_point and v.grad is not None
                    ]
                )
            finally:
                if previous is not None:
                    Fn.set_kernel_mode(previous)
        err = max(
            ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item() for a, b in zip(*results)
        )
        lines.append(
            f"verify N={n} {name}: max relative gradient difference vs eager kernels {err:.2e}"
        )
    return lines


def profile(device: torch.device, name: str, n: int, dim: int) -> str:
    """The top GPU kernels of one forward+backward of loss ``name`` (torch.profiler)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    loss = losses()[name]()
    inputs = _filter(loss, make_inputs(n, dim, device))
    step(loss, inputs)
    _sync(device)
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        step(loss, inputs)
        _sync(device)
    return prof.key_averages().table(
        sort_by="cuda_time_total", row_limit=14, max_name_column_width=70
    )


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def run(args: argparse.Namespace, device: torch.device, tf32: bool) -> str:
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = tf32
    names = [n for n in losses() if not args.only or any(o in n for o in args.only)]
    if "ClipLoss (upstream)" not in names:
        names.insert(0, "ClipLoss (upstream)")
    if device.type == "cuda":
        where = torch.cuda.get_device_name(device)
    else:
        where = f"{platform.processor() or 'cpu'} ({torch.get_num_threads()} threads)"
    lines = [
        f"device: {where}; torch {torch.__version__}; D={args.dim}; fp32 features; "
        + (f"TF32 matmul {'on' if tf32 else 'off'}; " if device.type == "cuda" else "")
        + ("median" if device.type == "cuda" else "best")
        + f" of {args.repeats} forward+backward",
        "",
        "| N | loss | time (ms) | x ClipLoss | peak beyond inputs (MiB) | x ClipLoss |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for n in args.sizes:
        base = None
        for name in names:
            if device.type == "cuda":
                r = measure_cuda(name, n, args.dim, args.repeats, device)
            else:
                r = measure_cpu(name, n, args.dim, args.repeats)
            if name == "ClipLoss (upstream)":
                base = r
            tr = r["ms"] / base["ms"] if r["ms"] and base and base["ms"] else None
            mr = r["mb"] / base["mb"] if r["mb"] is not None and base and base["mb"] else None
            row = f"| {n} | {name} | {fmt(r['ms'], '.1f')} | {fmt(tr, '.2f')} | {fmt(r['mb'], '.0f')} | {fmt(mr, '.2f')} |"
            lines.append(row)
            print(row, file=sys.stderr, flush=True)
    return "\n".join(lines)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tf32", choices=["on", "off", "both"], default="off", help="cuda only")
    p.add_argument(
        "--only", nargs="*", help="substrings of loss names to run (ClipLoss always runs)"
    )
    p.add_argument("--verify", type=int, default=0, help="first compare kernels vs eager at this N")
    p.add_argument(
        "--profile", nargs="*", default=[], help="losses to profile at --profile-n (cuda)"
    )
    p.add_argument("--profile-n", type=int, default=16384)
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        print(json.dumps(measure_cpu_child(args.child, args.sizes[0], args.dim, args.repeats)))
        return
    device = torch.device(args.device)
    from alignclip_plugins.losses import functional as Fn

    print(f"kernel mode: {Fn.active_kernel_mode(device)}")
    if args.verify:
        print("\n".join(verify(device, args.verify, args.dim)))
    settings = (
        {"on": [True], "off": [False], "both": [False, True]}[args.tf32]
        if device.type == "cuda"
        else [False]
    )
    for tf32 in settings:
        print(run(args, device, tf32))
        print()
    for name in args.profile:
        print(f"profile: {name}, N={args.profile_n}, TF32 {'on' if settings[-1] else 'off'}")
        print(profile(device, name, args.profile_n, args.dim))


if __name__ == "__main__":
    main()
