"""Caption object parsing throughput (captions/s), pinned to one CPU core.

Scenarios (seeded, generated here, no download):

* ``vocab`` matcher alone (``VocabParser.parse_batch``) on
  - ``shapes-48``: the embedded dataset's kind of vocabulary (6 colours x 8 shapes, colour
    and shape synonyms, singular and plural: ~900 surface forms), short captions;
  - ``words-10k`` / ``words-100k``: 10,000 / 100,000 random one-to-three-word entries with
    generated plurals, 14-word captions naming ~3 of them (a CC3M-sized vocabulary);
* the whole ``alignclip objects parse --parser vocab`` path (reading, matching, writing the
  sidecar) on a text file and on a webdataset shard (each sample with a 20 kB image member);
* ``pos`` (stanza) on CPU, and on GPU when torch sees one, if the English models are
  installed; otherwise the script says so and skips it.

Usage::

    python bench/objects.py                 # everything, ~1 minute
    python bench/objects.py --quick         # fewer captions
    python bench/objects.py --pos-only --captions 5000

Prints a Markdown table (paste into docs/benchmarks.md, section "Caption object parsing").
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import random
import statistics
import string
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from alignclip_plugins.objects.parsing import Caption  # noqa: E402
from alignclip_plugins.objects.run import parse_inputs  # noqa: E402
from alignclip_plugins.objects.vocabulary import VocabParser  # noqa: E402

COLOURS = {
    "red": ["red", "crimson", "scarlet"],
    "green": ["green", "emerald", "lime"],
    "blue": ["blue", "azure", "cobalt"],
    "yellow": ["yellow", "golden", "lemon"],
    "purple": ["purple", "violet", "plum"],
    "orange": ["orange", "tangerine", "amber"],
}
SHAPES = {
    "circle": [("circle", "circles"), ("disc", "discs"), ("dot", "dots")],
    "square": [("square", "squares"), ("box", "boxes"), ("block", "blocks")],
    "triangle": [("triangle", "triangles"), ("wedge", "wedges")],
    "star": [("star", "stars"), ("pentagram", "pentagrams")],
    "cross": [("cross", "crosses"), ("plus sign", "plus signs")],
    "ring": [("ring", "rings"), ("hoop", "hoops"), ("loop", "loops")],
    "diamond": [("diamond", "diamonds"), ("rhombus", "rhombi")],
    "heart": [("heart", "hearts"), ("love symbol", "love symbols")],
}
FILLER = (
    "a an the of on in with and near next to photo image picture small large bright "
    "dark over under beside two three some background white black scene view"
).split()


def pin_one_core() -> str:
    """Restrict this process to one CPU core; returns a description."""
    if hasattr(os, "sched_setaffinity"):
        core = min(os.sched_getaffinity(0))
        os.sched_setaffinity(0, {core})
        return f"pinned to core {core}"
    return "not pinned (no sched_setaffinity)"


def shapes_scenario(n: int, rng: random.Random) -> tuple[dict[str, list[str]], list[str]]:
    vocabulary: dict[str, list[str]] = {}
    for colour, colour_words in COLOURS.items():
        for shape, nouns in SHAPES.items():
            vocabulary[f"{colour} {shape}"] = [
                f"{c} {form}" for c in colour_words for pair in nouns for form in pair
            ]
    forms = [f for fs in vocabulary.values() for f in fs]
    captions = [
        f"a {rng.choice(FILLER)} {rng.choice(forms)} next to {rng.choice(forms)} "
        f"on a {rng.choice(FILLER)} background"
        for _ in range(n)
    ]
    return vocabulary, captions


def words_scenario(entries: int, n: int, rng: random.Random) -> tuple[list[str], list[str]]:
    """A plain name list (the loader generates plurals) and captions naming ~3 entries."""

    def word() -> str:
        return "".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 9)))

    names: set[str] = set()
    while len(names) < entries:
        names.add(" ".join(word() for _ in range(rng.choice((1, 1, 1, 2, 2, 3)))))
    pool = sorted(names)
    captions = []
    for _ in range(n):
        words = [rng.choice(FILLER) for _ in range(14)]
        for _ in range(3):
            words[rng.randrange(14)] = rng.choice(pool)
        captions.append(" ".join(words))
    return pool, captions


def rate(fn: Callable[[], int], repeats: int) -> tuple[float, float]:
    """(median, best) items per second of ``fn`` (which returns how many it did)."""
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        done = fn()
        rates.append(done / (time.perf_counter() - start))
    return statistics.median(rates), max(rates)


def bench_matcher(vocabulary, captions, repeats, tmp: Path, label: str) -> dict:
    if isinstance(vocabulary, dict):  # {canonical: [surface forms]}
        path = tmp / f"{label}.json"
        path.write_text(json.dumps(vocabulary))
    else:  # one name a line, plurals generated
        path = tmp / f"{label}.txt"
        path.write_text("\n".join(vocabulary) + "\n")
    start = time.perf_counter()
    parser = VocabParser(path)
    build = time.perf_counter() - start
    batch = [Caption("bench", str(i), c) for i, c in enumerate(captions)]
    size = parser.batch_size

    def run() -> int:
        for i in range(0, len(batch), size):
            parser.parse_batch(batch[i : i + size])
        return len(batch)

    median, best = rate(run, repeats)
    found = sum(map(len, parser.parse_batch(batch[:1000]))) / min(1000, len(batch))
    return {
        "scenario": f"vocab matcher, {label}",
        "forms": parser.matcher.num_forms,
        "captions": len(batch),
        "median": median,
        "best": best,
        "note": f"build {build:.2f} s, {found:.1f} objects/caption",
    }


def write_shard(path: Path, captions: list[str], image_bytes: int = 20_000) -> None:
    image = os.urandom(image_bytes)
    with tarfile.open(path, "w") as tar:
        for i, text in enumerate(captions):
            for ext, data in (("jpg", image), ("txt", text.encode())):
                info = tarfile.TarInfo(f"{i:09d}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))


def bench_end_to_end(vocabulary, captions, repeats, tmp: Path) -> list[dict]:
    vocab_path = tmp / "e2e-vocabulary.json"
    vocab_path.write_text(json.dumps(vocabulary))
    text = tmp / "captions.txt"
    text.write_text("\n".join(captions) + "\n")
    shard = tmp / "train-000000.tar"
    write_shard(shard, captions)
    rows = []
    for label, source in (("text file", text), ("webdataset shard (+20 kB images)", shard)):
        counter = [0]

        def run(source: Path = source, counter: list[int] = counter) -> int:
            counter[0] += 1
            out = tmp / f"out-{source.stem}-{counter[0]}"
            summary = parse_inputs([source], VocabParser(vocab_path), out, progress=False)
            return summary["captions"]

        median, best = rate(run, repeats)
        rows.append(
            {
                "scenario": f"`objects parse --parser vocab`, {label}",
                "forms": "",
                "captions": len(captions),
                "median": median,
                "best": best,
                "note": "read + match + atomic sidecar write",
            }
        )
    return rows


def bench_pos(captions: list[str], device: str) -> dict | None:
    from alignclip_plugins.objects.pos import PosParser, StanzaModelsMissing

    try:
        parser = PosParser(batch_size=256, device=device)
    except StanzaModelsMissing as e:
        print(f"[pos/{device}] skipped: {str(e).splitlines()[0]}", file=sys.stderr)
        return None
    batch = [Caption("bench", str(i), c) for i, c in enumerate(captions)]
    parser.parse_batch(batch[:256])  # warm-up (model load, CUDA kernels)

    def run() -> int:
        for i in range(0, len(batch), parser.batch_size):
            parser.parse_batch(batch[i : i + parser.batch_size])
        return len(batch)

    median, best = rate(run, 1)
    return {
        "scenario": f"pos (stanza tokenize,pos,lemma), {device}",
        "forms": "",
        "captions": len(batch),
        "median": median,
        "best": best,
        "note": "batch 256",
    }


def table(rows: list[dict]) -> str:
    lines = [
        "| scenario | surface forms | captions | captions/s (median) | captions/s (best) | notes |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        forms = f"{r['forms']:,}" if r["forms"] != "" else ""
        lines.append(
            f"| {r['scenario']} | {forms} | {r['captions']:,} | {r['median']:,.0f} | "
            f"{r['best']:,.0f} | {r['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=int, default=200_000, help="captions per scenario")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="20,000 captions, 2 repeats")
    parser.add_argument("--pos-only", action="store_true")
    parser.add_argument("--no-pos", action="store_true")
    parser.add_argument("--no-pin", action="store_true", help="do not pin to one core")
    args = parser.parse_args()
    if args.quick:
        args.captions, args.repeats = 20_000, 2
    pinned = "not pinned" if args.no_pin else pin_one_core()
    print(
        f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}, {pinned}"
    )
    rng = random.Random(0)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        shapes_vocab, shapes_captions = shapes_scenario(args.captions, rng)
        if not args.pos_only:
            rows.append(
                bench_matcher(shapes_vocab, shapes_captions, args.repeats, tmp, "shapes-48")
            )
            for entries in (10_000, 100_000):
                vocab, captions = words_scenario(entries, args.captions, rng)
                label = f"words-{entries // 1000}k"
                rows.append(bench_matcher(vocab, captions, args.repeats, tmp, label))
            e2e_captions = shapes_captions[: min(len(shapes_captions), 50_000)]
            rows.extend(bench_end_to_end(shapes_vocab, e2e_captions, args.repeats, tmp))
        if not args.no_pos:
            import torch

            pos_captions = shapes_captions[: min(len(shapes_captions), 5_000)]
            for device in ("cpu", "cuda") if torch.cuda.is_available() else ("cpu",):
                row = bench_pos(pos_captions, device)
                if row is not None:
                    rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    main()
