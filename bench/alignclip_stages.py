"""AlignCLIP's training sample stages at CC3M scale: throughput and memory of one loader worker.

Generates (seeded, no download) object sidecars for ``--shards`` shards of
``--shard-size`` samples (CC3M: ~290 shards of 10,000) over a ``--vocabulary``-object
Zipf vocabulary, ~3 objects a caption, then streams the samples of every shard in shard
order, through upstream-sized shuffle buffering (5,000 samples), into
``AttachObjectIds`` (lazy per-shard sidecar reads) and ``TextDomainStage`` (three domains),
as one loader worker would. Reports samples/s and the worker's peak resident memory,
against what loading every sidecar into one dict would need.

Usage::

    python bench/alignclip_stages.py                      # 40 shards x 10,000 (~1 min)
    python bench/alignclip_stages.py --shards 290         # all of CC3M

Prints a Markdown table (docs/benchmarks.md, section "AlignCLIP sample stages").
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import resource
import sys
import tempfile
import time
from pathlib import Path


def rss_mb() -> float:
    """Current resident memory of this process (Linux /proc; else the peak so far)."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
        return pages * resource.getpagesize() / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_sidecars(root: Path, shards: int, shard_size: int, names: list[str], seed: int) -> None:
    from alignclip_plugins.objects.sidecar import write_sidecar

    rng = random.Random(seed)
    weights = [1.0 / (rank + 1) for rank in range(len(names))]
    cumulative = list(itertools.accumulate(weights))
    for s in range(shards):
        records = (
            (
                f"{s:06d}{i:05d}",
                list(
                    dict.fromkeys(rng.choices(names, cum_weights=cumulative, k=rng.randint(1, 5)))
                ),
            )
            for i in range(shard_size)
        )
        write_sidecar(root / f"train-{s:06d}.objects.jsonl", records)


def stream(shards: int, shard_size: int, buffer: int, seed: int):
    """Samples in shard order through a shuffle buffer, like a webdataset worker."""
    rng = random.Random(seed)
    pool = []
    for s in range(shards):
        url = f"/data/cc3m/train-{s:06d}.tar"
        for i in range(shard_size):
            pool.append({"__url__": url, "__key__": f"{s:06d}{i:05d}", "text": "a caption"})
            if len(pool) >= buffer:
                yield pool.pop(rng.randrange(len(pool)))
    rng.shuffle(pool)
    yield from pool


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", type=int, default=40)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--vocabulary", type=int, default=100_000)
    parser.add_argument("--buffer", type=int, default=5_000, help="shuffle buffer (upstream's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from alignclip_plugins.objects.sample_objects import (
        AttachObjectIds,
        SidecarIndex,
        load_shard_objects,
        vocabulary_ids,
    )
    from alignclip_plugins.plugins.alignclip.stages import TextDomains, TextDomainStage

    names = [f"object{i}" for i in range(args.vocabulary)]
    ids = vocabulary_ids(names)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        write_sidecars(root, args.shards, args.shard_size, names, args.seed)
        sidecar_mb = sum(p.stat().st_size for p in root.iterdir()) / 2**20
        print(f"wrote {args.shards} sidecars ({sidecar_mb:.0f} MB) in {time.perf_counter() - t:.0f} s",
              file=sys.stderr)  # fmt: skip
        domains = TextDomains(
            (0.5, 0.25, 0.25),
            names=names,
            frequencies=[args.vocabulary - i for i in range(args.vocabulary)],
            templates=["a photo of a {}."],
            descriptions={i: [f"what object{i} looks like"] for i in range(0, args.vocabulary, 2)},
            rho=0.5,
        )
        attach = AttachObjectIds(SidecarIndex([root]), ids)
        text = TextDomainStage(domains)
        base = rss_mb()
        t = time.perf_counter()
        n, stage_peak = 0, 0.0
        for _ in text(attach(stream(args.shards, args.shard_size, args.buffer, 1))):
            n += 1
            if n % 10_000 == 0:
                stage_peak = max(stage_peak, rss_mb() - base)
        seconds = time.perf_counter() - t
        reads = attach.stats["sidecar_reads"]
        # for comparison: every sidecar in one dict (what a worker must not do)
        t = time.perf_counter()
        everything = {}
        for p in sorted(root.iterdir()):
            everything.update(load_shard_objects(p, ids))
        all_peak = rss_mb() - base
        del everything
    print("| samples | shards | vocabulary | samples/s | sidecar reads | stage memory (peak RSS "
          "growth) | all sidecars in one dict |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    print(f"| {n:,} | {args.shards} x {args.shard_size:,} | {args.vocabulary:,} | "
          f"{n / seconds:,.0f} | {reads} | {stage_peak:.0f} MB | {all_peak:.0f} MB |")  # fmt: skip
    print(f"\n{platform.processor() or platform.machine()}, Python {platform.python_version()}, "
          "one process (one loader worker)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
