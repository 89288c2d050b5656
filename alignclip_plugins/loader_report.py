"""What the training loader dropped and repeated, reported once an epoch (runs with plugins).

Upstream's webdataset pipeline skips a sample it cannot use with a warning that names no
sample, and fills an epoch up to ``--train-num-samples`` by reading its shards again. With
``--plugins`` the host puts these pieces into the training pipeline (the patch's call
sites in ``open_clip_train.data``; without plugins the pipeline is upstream's):

* :class:`TarSamples` runs upstream's tar reader with :meth:`LoaderEvents.tar_error` as its
  handler and records the shard being read: a truncated tar or a bad member drops the rest
  of that shard (one event per shard and read; the samples it held are unknown);
* :class:`WatchSamples`, before upstream's ``filter_no_caption_or_no_image``, records the
  samples it drops (no image or no caption member: a member lost in the tar, or a
  truncated last sample) and which sample goes to the decoder, so that
  :meth:`LoaderEvents.decode_error` (upstream's decode handler) names it;
* :class:`ReportBatches` wraps the batcher: upstream repeats a loader worker's pipeline
  until the epoch's batches are full, so the batches of a pass that follows a pass which
  ran out are repeats; the samples of a pass that fill no last batch are left out. Each
  batch gets a :class:`LoaderBatch` (field :data:`FIELD`) with its size, repeats and the
  worker's drops since its last batch, so that what every worker saw reaches the
  trainer's process; there the run's :class:`LoaderTotals` (in the run's stash, under
  :data:`TOTALS`) adds it up and logs the epoch (:meth:`LoaderTotals.report`).

Each drop is also logged when it happens (by the loader worker, the first
:data:`LOGGED_DROPS` of each). A drop after a worker's last batch of an epoch is counted in
the next epoch. With ``--dataset-resampled`` shards are drawn with replacement and a pass
never runs out: repeats are not counted then.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from alignclip_plugins.epoch_counts import EpochCounts
from alignclip_plugins.stash import StashKey

log = logging.getLogger(__name__)

FIELD = "loader_report"
LOGGED_DROPS = 20  # drops each loader worker logs one by one (the rest: the epoch's counts)

UNDECODABLE, INCOMPLETE, TAR_ERROR = "undecodable", "incomplete", "tar error"
#: how the epoch's report names each kind of drop: (singular, plural)
KINDS = {
    UNDECODABLE: ("undecodable sample", "undecodable samples"),
    INCOMPLETE: ("sample without an image or a caption", "samples without an image or a caption"),
    TAR_ERROR: ("shard cut short by a tar error", "shards cut short by a tar error"),
}


def _count(n: int, forms: tuple[str, str]) -> str:
    return f"{n} {forms[0] if n == 1 else forms[1]}"


def error_reason(exn: BaseException) -> str:
    """``Type: message`` of a loader error, without the stream webdataset and PIL append."""
    text = exn.args[0] if exn.args and isinstance(exn.args[0], str) else str(exn)
    text = text.split(" @ ", 1)[0].split(" <_io.", 1)[0].strip()
    return f"{type(exn).__name__}: {text}" if text else type(exn).__name__


@dataclass(frozen=True)
class Drop:
    """One thing the loader dropped: a sample (``key`` set) or the rest of a shard."""

    kind: str
    shard: str
    key: str | None
    reason: str

    def describe(self) -> str:
        where = f"sample {self.key!r} of {self.shard}" if self.key is not None else self.shard
        return f"{where} ({self.reason})"


@dataclass(frozen=True)
class LoaderBatch:
    """The :data:`FIELD` of a batch: its size, its repeats, and the worker's drops and
    left-over samples since its last batch."""

    samples: int
    repeats: int
    dropped: tuple[Drop, ...]
    leftover: int = 0


class LoaderEvents:
    """The drops one loader process has seen and not yet put into a batch.

    Built with the pipeline in the trainer's process; each loader worker has its own copy.
    """

    def __init__(self) -> None:
        self.leftover = 0  # samples of ended passes that did not fill a last batch
        self.shard = "?"  # being read by the tar reader
        self.current: tuple[str, str] = ("?", "?")  # (shard, key) going to the decoder
        self.pending: list[Drop] = []
        self.logged = 0
        self._tar_failed = False  # the shard being read already had its tar error

    def drop(self, kind: str, shard: str, key: str | None, reason: str) -> None:
        event = Drop(kind, shard, key, reason)
        self.pending.append(event)
        self.logged += 1
        if self.logged <= LOGGED_DROPS:
            what = "sample dropped" if key is not None else "the rest of the shard is not read"
            more = "; further drops are only counted" if self.logged == LOGGED_DROPS else ""
            log.warning(f"training loader: {event.describe()}: {what}{more}")

    def drain(self) -> tuple[tuple[Drop, ...], int]:
        """The drops and left-over samples since the last call."""
        out, leftover = tuple(self.pending), self.leftover
        self.pending, self.leftover = [], 0
        return out, leftover

    def track_shards(self, urls: Iterable[dict]) -> Iterator[dict]:
        """Pass the shard list on, noting the shard the tar reader takes next."""
        for item in urls:
            self.shard, self._tar_failed = str(item.get("url", "?")), False
            yield item

    def tar_error(self, exn: BaseException) -> bool:
        """Handler of upstream's tar reader: record, continue (upstream's choice)."""
        if not self._tar_failed:  # a truncated tar raises twice: its member, then its stream
            self._tar_failed = True
            self.drop(TAR_ERROR, self.shard, None, error_reason(exn))
        return True

    def decode_error(self, exn: BaseException) -> bool:
        """Handler of upstream's decoder: record the sample, continue."""
        shard, key = self.current
        self.drop(UNDECODABLE, shard, key, error_reason(exn))
        return True


class TarSamples:
    """Upstream's tar-to-samples stage (``read(urls, handler=...)``) reporting to ``events``."""

    def __init__(self, read: Callable, events: LoaderEvents) -> None:
        self.read, self.events = read, events

    def __call__(self, urls: Iterable[dict]) -> Iterator[dict]:
        return self.read(self.events.track_shards(urls), handler=self.events.tar_error)


class WatchSamples:
    """Stage before upstream's sample filter ``keep``: records what it drops and what the
    decoder gets next. Passes every sample on (the filter still drops)."""

    def __init__(self, events: LoaderEvents, keep: Callable[[dict], bool]) -> None:
        self.events, self.keep = events, keep

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        for sample in src:
            shard, key = str(sample.get("__url__", "?")), str(sample.get("__key__", "?"))
            self.events.current = (shard, key)
            if not self.keep(sample):
                members = sorted(k for k in sample if not k.startswith("__")) or ["none"]
                reason = f"no image or no caption; its members: {', '.join(members)}"
                self.events.drop(INCOMPLETE, shard, key, reason)
            yield sample


class ReportBatches:
    """The batcher of a training pipeline (``batcher(samples) -> dict batches``), adding
    each batch's :class:`LoaderBatch` as ``batch[FIELD]``.

    Every pass of upstream's repeated pipeline calls this stage anew. A pass that follows a
    pass which ran out of samples (within one epoch: an epoch's last pass is cut off, not
    run out) reads the same shards again: its batches are repeats. A pass that runs out
    leaves the samples that fill no last batch out (upstream's batcher drops them).
    """

    def __init__(self, batcher: Callable, events: LoaderEvents) -> None:
        self.batcher, self.events = batcher, events
        self.ran_out = False  # the last pass ran out of samples

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        repeat, self.ran_out = self.ran_out, False
        read = [0]

        def counted(samples):
            for sample in samples:
                read[0] += 1
                yield sample

        batched = 0
        for batch in self.batcher(counted(src)):
            n = len(batch["image"])
            batched += n
            dropped, leftover = self.events.drain()
            batch[FIELD] = LoaderBatch(n, n if repeat else 0, dropped, leftover)
            yield batch
        self.ran_out = True
        self.events.leftover += read[0] - batched


class LoaderTotals:
    """The training loader's counts since the last epoch's report, in the trainer's process.

    One per run (the host keeps it in the run's stash under :data:`TOTALS`): :meth:`receive`
    takes each training batch's :class:`LoaderBatch`, :meth:`report` logs the epoch.
    """

    def __init__(self) -> None:
        self.counts = EpochCounts()
        self.seen: set[Drop] = set()  # this epoch's drops: a sample read again is dropped again

    def receive(self, batch: dict) -> None:
        """Take the :data:`FIELD` out of a training batch and count it."""
        report = batch.pop(FIELD, None)
        if report is None:
            return
        self.counts.add("samples", report.samples)
        self.counts.add("repeats", report.repeats)
        self.counts.add("leftover", report.leftover)
        for event in report.dropped:
            if event not in self.seen:
                self.seen.add(event)
                self.counts.add(event.kind)
                self.counts.note(event.kind, event.describe())

    def report(self, epoch: int, args: argparse.Namespace) -> str | None:
        """Log (and return) the epoch's line: samples, repeats, drops with the first of each."""
        counts, examples = self.counts.pop()
        self.seen.clear()
        samples = counts.get("samples", 0)
        if not samples:
            return None
        return _report_line(epoch, args, counts, examples)


def _report_line(epoch: int, args, counts: dict[str, int], examples: dict[str, list[str]]) -> str:
    samples = counts["samples"]
    where = f" (rank {args.rank} of {args.world_size})" if getattr(args, "distributed", 0) else ""
    repeats, leftover = counts.get("repeats", 0), counts.get("leftover", 0)
    text = f"training loader, epoch {epoch}{where}: {samples} samples, {repeats} of them repeats"
    if repeats:
        text += (
            " (read again in the same epoch: the shards ran out before the epoch's batches "
            "were full, see --train-num-samples)"
        )
    if leftover:
        text += (
            f"; {leftover} samples read but left out (the last, incomplete batch of a loader "
            "worker's pass over its shards)"
        )
    dropped = [
        f"{_count(counts[kind], forms)} (first: {'; '.join(examples.get(kind, []))})"
        for kind, forms in KINDS.items()
        if counts.get(kind)
    ]
    if dropped:
        text += f"; dropped: {', '.join(dropped)}"
        log.warning(text)
    else:
        text += "; none dropped"
        log.info(text)
    return text


#: the run's stash: the events of its last training pipeline built (the trainer's copy)
EVENTS = StashKey[LoaderEvents]("loader report: events of the training pipeline")
#: the run's stash: the counts the training batches brought since the last report
TOTALS = StashKey[LoaderTotals]("loader report: the epoch's totals")
