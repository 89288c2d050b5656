"""Parsing a list of inputs into sidecars: resume, progress, summary.

- One sidecar per input, written atomically: an input whose sidecar exists is finished
  and skipped on a rerun (``overwrite`` re-parses everything).
- An input with a caption that could not be parsed in this run (an LLM request that kept
  failing) gets no sidecar; the run goes on with the next input and a rerun retries it.
- ``OUT/parse-config.json`` records the parser's identity (backend, vocabulary hash, LLM
  model): sidecars of two different parsers are never mixed in one directory.
- Shard samples whose ``txt`` holds several captions, one a line, get one object set per
  line (``captions`` in the record, see :mod:`.sidecar`); a ``txt`` without a non-empty line
  gets no record (counted: training skips such samples).
- ``OUT/parse-summary.json``: this run's inputs (samples, captions, captions with no object,
  distinct objects, ...; skipped inputs read back from their sidecars, their read counts kept
  from the run that parsed them) with per-input rows; ``runs``: every run into the directory
  (when, what it parsed, seconds, LLM requests); ``total``: the counts over every input ever
  parsed there and the runs' work summed. A rerun adds to it instead of replacing it.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from collections.abc import Collection, Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from alignclip_plugins.captions.choice import caption_lines
from alignclip_plugins.io.atomic import (
    atomic_write_text,
    atomic_writer,
    remove_stale_temporaries,
)
from alignclip_plugins.objects.captions import ReadStats, is_tar, iter_captions
from alignclip_plugins.objects.parsing import Caption, ObjectParser
from alignclip_plugins.objects.sidecar import (
    SIDECAR_SUFFIX,
    iter_records,
    record_json,
    sidecar_path,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "parse-config.json"
SUMMARY_FILE = "parse-summary.json"


@dataclass
class InputResult:
    """What happened to one input (counts of what its sidecar holds)."""

    input: str
    output: str
    status: str  # "parsed", "skipped" (sidecar already there) or "failed" (rerun to retry)
    samples: int = 0  # records (one per sample; text inputs: one per line)
    captions: int = 0  # caption lines parsed (a multi-caption sample counts each)
    captions_without_objects: int = 0
    samples_without_caption: int = 0  # shard samples without a .txt member
    samples_with_empty_caption: int = 0  # .txt without a non-empty line: no record
    undecodable_captions: int = 0
    failed_captions: int = 0


# counts of a run or of the whole directory, summed over inputs
_INPUT_COUNTS = (
    "samples",
    "captions",
    "captions_without_objects",
    "samples_without_caption",
    "samples_with_empty_caption",
    "undecodable_captions",
)


class _Incomplete(Exception):
    """Raised inside the atomic writer to discard a sidecar with unparsed captions."""


@dataclass(frozen=True)
class _Unit:
    """One caption to parse: line ``index`` of ``count`` of sample ``key``."""

    caption: Caption
    key: str
    index: int
    count: int


def caption_units(source: Path, stats: ReadStats, empty: list[str]) -> Iterator[_Unit]:
    """The captions of an input to parse, one per caption line of each shard sample.

    Text inputs: each line is one caption (keyed by its line number, empty ones too).
    Shards: a sample's ``txt`` may hold several captions, one a line; samples without a
    non-empty line are left out (their keys appended to ``empty``).
    """
    for caption in iter_captions(source, stats):
        if not is_tar(source):
            yield _Unit(caption, caption.key, 0, 1)
            continue
        lines = caption_lines(caption.text)
        if not lines:
            empty.append(caption.key)
        for i, line in enumerate(lines):
            key = caption.key if len(lines) == 1 else f"{caption.key}#{i}"
            yield _Unit(Caption(caption.source, key, line), caption.key, i, len(lines))


def _batches(units: Iterator[_Unit], size: int) -> Iterator[list[_Unit]]:
    batch: list[_Unit] = []
    for unit in units:
        batch.append(unit)
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
    for record in iter_records(result.output):
        result.samples += 1
        for objects in record.caption_sets:
            result.captions += 1
            result.captions_without_objects += not objects
            counts.update(objects)


def _previous_summary(out: Path, identity: dict[str, Any]) -> dict[str, Any]:
    """The directory's summary of earlier runs of this parser (empty if none or another)."""
    try:
        previous = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(previous, dict) or previous.get("parser") != identity:
        return {}
    return previous


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
    identity = parser.identity()
    previous = {} if overwrite else _previous_summary(out, identity)
    check_identity(out, identity, overwrite, outputs)
    remove_stale_temporaries(out, SIDECAR_SUFFIX)
    known = {row.get("output"): row for row in (previous.get("total") or {}).get("per_input", [])}

    started_at = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
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
                earlier = known.get(str(target)) or {}
                for name in ("samples_without_caption", "samples_with_empty_caption"):
                    setattr(result, name, int(earlier.get(name) or 0))
                result.undecodable_captions = int(earlier.get("undecodable_captions") or 0)
                continue
            started = time.perf_counter()
            _parse_input(source, target, parser, result, counts, bar)
            parse_seconds += time.perf_counter() - started
            parsed_captions += result.captions
    finally:
        bar.close()
        parser.close()

    done = [r for r in results if r.status != "failed"]
    run: dict[str, Any] = {
        "started": started_at,
        "inputs": len(results),
        "inputs_parsed": sum(r.status == "parsed" for r in results),
        "inputs_skipped": sum(r.status == "skipped" for r in results),
        "inputs_failed": sum(r.status == "failed" for r in results),
        "captions_parsed": sum(r.captions for r in results if r.status != "skipped"),
        "failed_captions": sum(r.failed_captions for r in results),
        **parser.counters(),
        "parse_seconds": round(parse_seconds, 3),
        "captions_per_second": round(parsed_captions / parse_seconds, 1) if parse_seconds else None,
    }
    summary: dict[str, Any] = {
        "parser": identity,
        # this run's inputs (skipped ones read back from their sidecars)
        "inputs": run["inputs"],
        "inputs_parsed": run["inputs_parsed"],
        "inputs_skipped": run["inputs_skipped"],
        "inputs_failed": run["inputs_failed"],
        **{name: sum(getattr(r, name) for r in done) for name in _INPUT_COUNTS},
        "distinct_objects": len(counts),
        "object_occurrences": sum(counts.values()),
        "failed_captions": run["failed_captions"],
        **parser.counters(),
        "parse_seconds": run["parse_seconds"],
        "captions_per_second": run["captions_per_second"],
        "per_input": [asdict(r) for r in results],
        # every run into this directory, and the totals over all of them
        "runs": [*(previous.get("runs") or []), run],
    }
    summary["total"] = _totals(summary["runs"], known, results)
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    return summary


def _parse_input(
    source: Path, target: Path, parser: ObjectParser, result: InputResult, counts: Counter, bar
) -> None:
    """Parse one input into its sidecar (none when a caption could not be parsed)."""
    stats = ReadStats()
    empty: list[str] = []
    shard_counts: Counter[str] = Counter()
    pending: dict[str, list[list[str]]] = {}  # a sample's sets until all its lines are parsed
    try:
        with atomic_writer(target) as f:
            units = caption_units(source, stats, empty)
            for batch in _batches(units, parser.batch_size):
                captions = [u.caption for u in batch]
                for unit, objects in zip(batch, parser.parse_batch(captions), strict=True):
                    result.captions += 1
                    if objects is None:
                        result.failed_captions += 1
                        objects = []
                    else:
                        result.captions_without_objects += not objects
                        shard_counts.update(objects)
                    sets = pending.setdefault(unit.key, [])
                    sets.append(objects)
                    if len(sets) == unit.count:
                        del pending[unit.key]
                        f.write(record_json(unit.key, sets) + "\n")
                        result.samples += 1
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
    result.samples_without_caption = stats.samples_without_caption
    result.samples_with_empty_caption = len(empty)
    result.undecodable_captions = stats.undecodable_captions
    if empty:
        log.warning(
            "%s: %d samples have a .txt without a non-empty line (e.g. %r); they get no object "
            "set (training skips them)",
            source,
            len(empty),
            empty[0],
        )


_RUN_ONLY = {"started", "inputs", "inputs_parsed", "inputs_skipped", "inputs_failed"}


def _totals(runs: list[dict], known: dict, results: list[InputResult]) -> dict[str, Any]:
    """Counts over every input ever parsed into the directory (this run's rows replacing
    earlier ones) and the work of every run summed (seconds, LLM requests, ...)."""
    rows = dict(known)
    for r in results:
        rows[r.output] = {**asdict(r), "status": "failed" if r.status == "failed" else "done"}
    per_input = [rows[k] for k in sorted(rows)]
    done = [row for row in per_input if row["status"] == "done"]
    summed = sorted(
        {
            k
            for r in runs
            for k, v in r.items()
            if k not in _RUN_ONLY and k != "captions_per_second"
            if isinstance(v, (int, float)) and not isinstance(v, bool)
        }
    )
    total: dict[str, Any] = {
        "runs": len(runs),
        "inputs": len(per_input),
        "inputs_done": len(done),
        "inputs_failed": len(per_input) - len(done),
        **{name: sum(int(row.get(name) or 0) for row in done) for name in _INPUT_COUNTS},
        **{k: sum(r.get(k) or 0 for r in runs) for k in summed},
    }
    if "parse_seconds" in total:
        total["parse_seconds"] = round(total["parse_seconds"], 3)
    total["per_input"] = per_input
    return total


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
    for name in ("samples_without_caption", "samples_with_empty_caption", "undecodable_captions"):
        if summary.get(name):
            lines.append(f"{name.replace('_', ' ')}: {summary[name]:,}")
    total = summary.get("total") or {}
    if total.get("runs", 0) > 1:
        lines.append(
            f"all {total['runs']} runs into this directory: {total['inputs_done']:,} of "
            f"{total['inputs']:,} inputs done, {total['samples']:,} samples, "
            f"{total['captions']:,} captions"
        )
    return "\n".join(lines)
