"""Each webdataset sample's image-side object ids (the set O_i), read from its shard's sidecar.

``alignclip objects parse`` writes one sidecar per shard, ``<shard stem>.objects.jsonl``
(``{"key", "objects"}`` lines, plus ``captions``: one set per caption line for samples with
several captions). During training, :class:`AttachObjectIds` looks up the sidecar of each
sample's shard (``__url__``), maps the object names to vocabulary ids (objects outside the
vocabulary are dropped) and adds ``image_objects`` (a tuple of ids): the set of the caption
the ``captions`` plugin chose for the sample (``caption_index``), the union over its
captions for ``--caption-choice all``. A sidecar whose number of sets for a sample differs
from the sample's number of caption lines (a sidecar written for one caption per sample
used with multi-caption shards, or the reverse) is an error naming the shard, the key and
the command that rewrites it.

It scales to CC3M-sized datasets: a sidecar is read only when a sample of its shard
arrives, and only the sidecars of the shards currently in the shuffle buffer are kept
(:class:`~alignclip_plugins.io.shard_cache.ShardCache`: least recently used evicted beyond
``max_cached_samples`` entries), so a loader worker never holds the whole dataset's object
sets.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path

from alignclip_plugins.io.shard_cache import DEFAULT_MAX_CACHED_SAMPLES, ShardCache
from alignclip_plugins.io.shards import shard_stem
from alignclip_plugins.keyed_draws import PassEpochs
from alignclip_plugins.objects.run import CONFIG_FILE as PARSE_CONFIG_FILE
from alignclip_plugins.objects.sidecar import SIDECAR_SUFFIX, iter_records, sidecar_files

log = logging.getLogger(__name__)


def _covered(objects: dict | None) -> int:
    """Samples a shard's cached object sets cover (no sidecar: none)."""
    return len(objects or ())


class SidecarIndex:
    """Sidecar file by shard stem, over the given sidecar directories and files."""

    def __init__(self, locations: Sequence[str | os.PathLike]) -> None:
        self.locations = [Path(p) for p in locations]
        if not self.locations:
            raise ValueError("no sidecar directory or file given")
        self.paths: dict[str, Path] = {}
        for path in sidecar_files(*self.locations):
            if not path.name.endswith(SIDECAR_SUFFIX):
                raise ValueError(f"{path} is not a sidecar (*{SIDECAR_SUFFIX}) file")
            stem = path.name[: -len(SIDECAR_SUFFIX)]
            if stem in self.paths and self.paths[stem] != path:
                raise ValueError(
                    f"two sidecars for shard {stem!r}: {self.paths[stem]} and {path}; "
                    "give each shard's sidecar once"
                )
            self.paths[stem] = path

    @classmethod
    def from_option(cls, value: str) -> SidecarIndex:
        """From a ``PATH[,PATH...]`` option value."""
        return cls([p.strip() for p in str(value).split(",") if p.strip()])

    def path_for(self, url: str) -> Path | None:
        """The sidecar of shard ``url``, or None."""
        return self.paths.get(shard_stem(url))

    def missing(self, urls: Iterable[str]) -> list[str]:
        """The shard URLs that have no sidecar here, in order."""
        return [url for url in urls if self.path_for(url) is None]


def vocabulary_ids(names: Sequence[str]) -> dict[str, int]:
    """Object name -> id: its position in the vocabulary (most frequent first)."""
    return {name: i for i, name in enumerate(names)}


class CaptionIds(tuple):
    """A multi-caption sample's object ids: the tuple is the union over its captions (in
    order of first mention), ``captions`` one id tuple per caption line."""

    captions: tuple[tuple[int, ...], ...]

    def __new__(cls, union: Sequence[int], captions: Sequence[tuple[int, ...]]) -> CaptionIds:
        self = super().__new__(cls, union)
        self.captions = tuple(captions)
        return self


def num_caption_sets(ids: tuple[int, ...]) -> int:
    """How many captions a sidecar entry has object sets for."""
    return len(ids.captions) if isinstance(ids, CaptionIds) else 1


def load_shard_objects(
    path: str | os.PathLike, ids: Mapping[str, int], dropped: Counter | None = None
) -> dict[str, tuple[int, ...]]:
    """Object ids by sample key of one sidecar; names outside ``ids`` are dropped (counted
    in ``dropped`` by name). Each id appears once per sample, in caption order. Multi-caption
    records give a :class:`CaptionIds`."""

    def to_ids(names: Sequence[str]) -> tuple[int, ...]:
        kept = []
        for name in names:
            i = ids.get(name)
            if i is None:
                if dropped is not None:
                    dropped[name] += 1
            else:
                kept.append(i)
        return tuple(dict.fromkeys(kept))

    out: dict[str, tuple[int, ...]] = {}
    for record in iter_records(path):
        if record.captions is None:
            out[record.key] = to_ids(record.objects)
        else:
            sets = [to_ids(names) for names in record.captions]
            out[record.key] = CaptionIds(dict.fromkeys(i for s in sets for i in s), sets)
    return out


def caption_count_mismatch(
    key: str,
    shard: str,
    sidecar: str | os.PathLike,
    in_shard: int,
    in_sidecar: int,
    inputs: Sequence[str] = (),
) -> str:
    """The error for a sample whose caption lines and sidecar object sets do not pair up;
    ``inputs``: the training shard patterns to re-parse (default: the shard)."""
    patterns = " ".join(f"'{p}'" for p in (inputs or [shard]))
    rerun = (
        f"re-parse the training shards with: alignclip objects parse {patterns} --out "
        f"{Path(sidecar).parent} --overwrite (plus the --parser options you used)"
    )
    if in_sidecar == 1:
        why = (
            f"{sidecar} holds one object set per sample (it was written for one caption per "
            f"sample, or by a version of 'alignclip objects parse' before per-caption sets), "
            f"but sample {key!r} of {shard} has {in_shard} captions, one a line"
        )
    elif in_shard == 1:
        why = (
            f"{sidecar} was written for multi-caption shards ({in_sidecar} object sets for "
            f"sample {key!r}), but {shard} holds one caption for it"
        )
    else:
        why = (
            f"caption-count mismatch for sample {key!r}: {shard} has {in_shard} caption "
            f"lines, {sidecar} {in_sidecar} object sets (the sidecar comes from other shards)"
        )
    return f"{why}; {rerun}"


def check_caption_counts(
    shard: str, sidecar: str | os.PathLike, inputs: Sequence[str] = ()
) -> None:
    """Raise ValueError if a sample of the (local) ``shard`` has another number of caption
    lines than ``sidecar`` has object sets for it; the start-up check of one shard."""
    from alignclip_plugins.captions.choice import caption_lines
    from alignclip_plugins.objects.captions import iter_captions

    sets = {record.key: record.num_captions for record in iter_records(sidecar)}
    for caption in iter_captions(shard):
        in_shard = len(caption_lines(caption.text))
        in_sidecar = sets.get(caption.key)
        if in_shard and in_sidecar is not None and in_sidecar != in_shard:
            raise ValueError(
                caption_count_mismatch(caption.key, shard, sidecar, in_shard, in_sidecar, inputs)
            )


class AttachObjectIds:
    """webdataset stage adding ``image_objects`` (tuple of vocabulary ids) to each sample.

    A sample whose shard's sidecar has no entry for its key gets an empty set. A shard
    without a sidecar is an error naming the shard and the command that writes it, unless
    ``allow_missing`` (then its samples get empty sets). Counts are logged at the end of
    every pass (one epoch of one loader worker); ``epoch`` is upstream's ``SharedEpoch``
    (or None), only used to label the log line.
    """

    def __init__(
        self,
        index: SidecarIndex,
        ids: Mapping[str, int],
        *,
        allow_missing: bool = False,
        epoch=None,
        max_cached_samples: int = DEFAULT_MAX_CACHED_SAMPLES,
    ) -> None:
        self.index = index
        self.ids = dict(ids)
        self.allow_missing = allow_missing
        self.epochs = PassEpochs(epoch)
        self._cache: ShardCache[dict[str, tuple[int, ...]] | None] = ShardCache(
            self._read_shard, _covered, max_cached_samples
        )
        self.stats: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()

    def shard_objects(self, url: str) -> dict[str, tuple[int, ...]] | None:
        """The object ids by key of shard ``url`` (None: no sidecar, ``allow_missing``)."""
        return self._cache.get(url)

    def _read_shard(self, url: str) -> dict[str, tuple[int, ...]] | None:
        path = self.index.path_for(url)
        if path is None:
            if not self.allow_missing:
                raise FileNotFoundError(missing_sidecars_message([url], self.index.locations))
            log.warning("shard %s has no object sidecar; its samples get empty object sets", url)
            return None
        self.stats["sidecar_reads"] += 1
        return load_shard_objects(path, self.ids, self.dropped)

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        epoch = self.epochs.next()
        self.stats.clear()
        self.dropped.clear()
        try:
            for sample in src:
                url = sample.get("__url__")
                if url is None:
                    raise KeyError(
                        f"sample {sample.get('__key__')!r} has no '__url__': the alignclip "
                        "object stage needs webdataset samples (--dataset-type webdataset)"
                    )
                objects = self.shard_objects(url)
                self.stats["samples"] += 1
                if objects is None:
                    ids: tuple[int, ...] = ()
                    self.stats["without_sidecar"] += 1
                else:
                    found = objects.get(sample["__key__"])
                    if found is None:
                        self.stats["without_entry"] += 1
                        ids = ()
                    else:
                        ids = self.caption_objects(found, sample, url)
                self.stats["empty"] += not ids
                sample["image_objects"] = ids
                yield sample
        finally:
            if self.stats["samples"]:
                self.log_pass(epoch)

    def caption_objects(self, found: tuple[int, ...], sample: dict, url: str) -> tuple[int, ...]:
        """The ids of the sample's chosen caption (``caption_index`` / ``caption_count``
        from the captions stage; without them: the sidecar entry's union)."""
        count, index = sample.get("caption_count"), sample.get("caption_index")
        if count is not None and count != num_caption_sets(found):
            raise ValueError(
                caption_count_mismatch(
                    sample["__key__"], url, self.index.path_for(url), count, num_caption_sets(found)
                )
            )
        if index is None or not isinstance(found, CaptionIds):
            return tuple(found)
        return found.captions[index]

    def log_pass(self, epoch: int) -> None:
        s = self.stats
        message = (
            f"alignclip objects, epoch {epoch}: {s['samples']} samples, {s['empty']} with an "
            f"empty object set ({s['without_entry']} without a sidecar entry, "
            f"{s['without_sidecar']} in shards without a sidecar); "
            f"{sum(self.dropped.values())} object mentions outside the vocabulary dropped; "
            f"{s['sidecar_reads']} sidecar reads"
        )
        if self.dropped:
            message += (
                " (most dropped: "
                + ", ".join(f"{name!r} x{n}" for name, n in self.dropped.most_common(5))
                + ")"
            )
        level = logging.WARNING if s["without_entry"] or s["without_sidecar"] else logging.INFO
        log.log(level, message)


def missing_sidecars_message(
    urls: Sequence[str], locations: Sequence[Path], inputs: Sequence[str] = ()
) -> str:
    """The error for training shards without a sidecar: which, and the command writing them.

    ``inputs`` are the shard patterns to parse (default: the missing shards); shards already
    parsed are skipped by ``alignclip objects parse``, so the whole training set is fine.
    The command uses the parser the existing sidecars were made with (recorded in the
    ``parse-config.json`` next to them: ``alignclip objects parse`` refuses to mix parsers in
    one directory); without one, the default parser.
    """
    shown = "\n  ".join(urls[:10]) + (f"\n  ... ({len(urls) - 10} more)" if len(urls) > 10 else "")
    where = ", ".join(str(p) for p in locations)
    out = next((p for p in locations if p.is_dir()), None)
    if out is None:
        out = locations[0].parent if locations else Path("OBJECTS_DIR")
    patterns = " ".join(f"'{p}'" for p in (inputs or urls))
    config = _parse_config(out)
    escape = "--alignclip-allow-missing-sidecars to train those samples with empty object sets"
    if config is None:
        return (
            f"{len(urls)} training shard(s) have no object sidecar in {where}:\n  {shown}\n"
            f"write them with (shards already parsed are skipped):\n"
            f"  alignclip objects parse {patterns} --out {out}\n"
            f"(add --parser vocab --vocabulary FILE for a fixed vocabulary), or pass {escape}"
        )
    options, note = parser_options(config)
    return (
        f"{len(urls)} training shard(s) have no object sidecar in {where}:\n  {shown}\n"
        f"write them with the parser the other sidecars were made with "
        f"({out / PARSE_CONFIG_FILE}; shards already parsed are skipped):\n"
        f"  alignclip objects parse {patterns}{options} --out {out}\n"
        f"{note}or pass {escape}"
    )


def _parse_config(directory: Path) -> dict | None:
    try:
        config = json.loads((directory / PARSE_CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("parser") else None


def parser_options(config: dict) -> tuple[str, str]:
    """The ``alignclip objects parse`` options that reproduce a recorded parser identity
    (``parse-config.json``), and a note on what the user must fill in ("" if nothing)."""
    parser = config["parser"]
    if parser == "vocab":
        sha = str(config.get("vocabulary_sha256", ""))[:12]
        return " --parser vocab --vocabulary VOCABULARY_FILE", (
            f"(VOCABULARY_FILE: the vocabulary those sidecars were parsed with, sha256 {sha}...), "
        )
    if parser == "llm":
        model = config.get("model", "MODEL")
        return f" --parser llm --llm-url URL --llm-model {model}", (
            "(URL: the chat-completions endpoint serving that model), "
        )
    options = f" --parser {parser}"
    if config.get("depparse"):
        options += " --depparse"
    if config.get("compounds"):
        return options + " --compounds FILE", (
            f"(FILE: the extra compound nouns, one a line: {', '.join(config['compounds'][:5])}"
            f"{', ...' if len(config['compounds']) > 5 else ''}), "
        )
    return options, ""
