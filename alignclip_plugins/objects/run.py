"""Parsing a list of inputs into sidecars: resume, progress, summary.

- One sidecar per input, written atomically: an input whose sidecar exists is finished
  and skipped on a rerun (``overwrite`` re-parses everything).
- An input with a caption that could not be parsed in this run (an LLM request that kept
  failing) gets no sidecar; the run goes on with the next input and a rerun retries it.
- ``OUT/parse-config.json`` records the parser's identity (backend, vocabulary hash, LLM
  model): sidecars of two different parsers are never mixed in one directory.
- ``OUT/parse-summary.json``: captions, captions with no object, distinct objects, ...
  over all inputs (skipped ones read back from their sidecars), plus per-input rows.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from alignclip_plugins.io.atomic import (
    atomic_write_text,
    atomic_writer,
    remove_stale_temporaries,
)
from alignclip_plugins.objects.captions import ReadStats, iter_captions
from alignclip_plugins.objects.parsing import Caption, ObjectParser
from alignclip_plugins.objects.sidecar import SIDECAR_SUFFIX, iter_sidecar, sidecar_path

log = logging.getLogger(__name__)

CONFIG_FILE = "parse-config.json"
SUMMARY_FILE = "parse-summary.json"


@dataclass
class InputResult:
    """What happened to one input."""

    input: str
    output: str
    status: str  # "parsed", "skipped" (sidecar already there) or "failed" (rerun to retry)
    captions: int = 0
    captions_without_objects: int = 0
    samples_without_caption: int = 0
    undecodable_captions: int = 0
    failed_captions: int = 0


class _Incomplete(Exception):
    """Raised inside the atomic writer to discard a sidecar with unparsed captions."""


def _batches(captions: Iterator[Caption], size: int) -> Iterator[list[Caption]]:
    batch: list[Caption] = []
    for caption in captions:
        batch.append(caption)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def check_identity(
    out_dir: Path, identity: dict[str, Any], overwrite: bool, targets: Collection[Path] = ()
) -> None:
    """Refuse to add sidecars of another parser to ``out_dir``; record ``identity``.

    With ``overwrite`` the new identity replaces the old one; sidecars of the old one that
    this run will not rewrite (not among ``targets``) are reported.
    """
    path = out_dir / CONFIG_FILE
    if path.exists():
        try:
            previous = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            previous = None
        if previous != identity and not overwrite:
            raise ValueError(
                f"{out_dir} holds object sets made by another parser configuration\n"
                f"  there:     {json.dumps(previous, sort_keys=True)}\n"
                f"  requested: {json.dumps(identity, sort_keys=True)}\n"
                "Use another --out directory, or pass --overwrite to re-parse every input."
            )
        stale = set(out_dir.glob(f"*{SIDECAR_SUFFIX}")) - set(targets)
        if previous != identity and stale:
            log.warning(
                "%d sidecars in %s (e.g. %s) come from the previous parser configuration and "
                "are not among this run's inputs; delete them or they mix with the new ones",
                len(stale),
                out_dir,
                min(stale).name,
            )
    atomic_write_text(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")


def _read_back(result: InputResult, counts: Counter) -> None:
    for _, objects in iter_sidecar(result.output):
        result.captions += 1
        result.captions_without_objects += not objects
        counts.update(objects)


def parse_inputs(
    inputs: Sequence[str | os.PathLike],
    parser: ObjectParser,
    out_dir: str | os.PathLike,
    overwrite: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """Parse every input into ``out_dir``; returns (and writes) the summary."""
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    outputs: dict[Path, Path] = {}
    for path in map(Path, inputs):
        target = sidecar_path(out, path)
        if target in outputs:
            raise ValueError(
                f"inputs {outputs[target]} and {path} would both write {target}; "
                "parse them into different --out directories"
            )
        outputs[target] = path
    check_identity(out, parser.identity(), overwrite, outputs)
    remove_stale_temporaries(out, SIDECAR_SUFFIX)

    results: list[InputResult] = []
    counts: Counter[str] = Counter()
    parsed_captions, parse_seconds = 0, 0.0
    bar = tqdm(
        unit=" captions",
        desc=f"parse [{parser.name}]",
        disable=not progress,
        dynamic_ncols=True,
        mininterval=0.5,
    )
    try:
        for index, (target, source) in enumerate(outputs.items(), start=1):
            result = InputResult(str(source), str(target), "parsed")
            results.append(result)
            bar.set_postfix_str(f"input {index}/{len(outputs)} {source.name}")
            if target.exists() and not overwrite:
                result.status = "skipped"
                _read_back(result, counts)
                continue
            stats = ReadStats()
            shard_counts: Counter[str] = Counter()
            started = time.perf_counter()
            try:
                with atomic_writer(target) as f:
                    for batch in _batches(iter_captions(source, stats), parser.batch_size):
                        for caption, objects in zip(batch, parser.parse_batch(batch), strict=True):
                            result.captions += 1
                            if objects is None:
                                result.failed_captions += 1
                                continue
                            result.captions_without_objects += not objects
                            shard_counts.update(objects)
                            record = {"key": caption.key, "objects": objects}
                            f.write(json.dumps(record, ensure_ascii=False) + "\n")
                        bar.update(len(batch))
                    if result.failed_captions:
                        raise _Incomplete
            except _Incomplete:
                result.status = "failed"
                log.error(
                    "%s: %d of %d captions could not be parsed; no sidecar written, rerun "
                    "the same command to retry them",
                    source,
                    result.failed_captions,
                    result.captions,
                )
            else:
                counts.update(shard_counts)
            parse_seconds += time.perf_counter() - started
            parsed_captions += result.captions
            result.samples_without_caption = stats.samples_without_caption
            result.undecodable_captions = stats.undecodable_captions
    finally:
        bar.close()
        parser.close()

    done = [r for r in results if r.status != "failed"]
    summary: dict[str, Any] = {
        "parser": parser.identity(),
        "inputs": len(results),
        "inputs_parsed": sum(r.status == "parsed" for r in results),
        "inputs_skipped": sum(r.status == "skipped" for r in results),
        "inputs_failed": sum(r.status == "failed" for r in results),
        "captions": sum(r.captions for r in done),
        "captions_without_objects": sum(r.captions_without_objects for r in done),
        "distinct_objects": len(counts),
        "object_occurrences": sum(counts.values()),
        "samples_without_caption": sum(r.samples_without_caption for r in results),
        "undecodable_captions": sum(r.undecodable_captions for r in results),
        "failed_captions": sum(r.failed_captions for r in results),
        **parser.counters(),
        "parse_seconds": round(parse_seconds, 3),
        "captions_per_second": round(parsed_captions / parse_seconds, 1) if parse_seconds else None,
        "per_input": [asdict(r) for r in results],
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines of a :func:`parse_inputs` summary."""
    lines = [
        f"inputs: {summary['inputs']} ({summary['inputs_parsed']} parsed, "
        f"{summary['inputs_skipped']} already done, {summary['inputs_failed']} failed)",
        f"captions: {summary['captions']:,}",
        f"captions with no object: {summary['captions_without_objects']:,}",
        f"distinct objects: {summary['distinct_objects']:,}",
    ]
    if summary.get("captions_per_second"):
        lines.append(f"speed: {summary['captions_per_second']:,.0f} captions/s")
    for name in ("malformed_answers", "llm_requests", "llm_cache_hits", "llm_failed_requests"):
        if name in summary:
            lines.append(f"{name.replace('_', ' ')}: {summary[name]:,}")
    for name in ("samples_without_caption", "undecodable_captions"):
        if summary.get(name):
            lines.append(f"{name.replace('_', ' ')}: {summary[name]:,}")
    return "\n".join(lines)
