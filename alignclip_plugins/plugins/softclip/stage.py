"""SoftCLIP's sample stage: a webdataset stage that adds each sample's ROIs and tags
(docs/methods.md, "ROI features and tags").

For every sample (``__key__`` of shard ``__url__``) the stage looks the key up in the
shard's sidecar (:mod:`alignclip_plugins.rois.storage`) and adds

* ``roi_features``: float16 (K, 2052), the sample's (at most K) ROIs, zero-padded;
* ``roi_mask``: bool (K,), True for the ROI slots;
* ``tag_text``: int64 (L,), the tokenised tag sentence ("attr class, attr class, ...")
  without its padding (L = its length with start and end tokens).

The collators pad ``tag_text`` to the longest sentence of the batch only: tags are short,
and the text tower then runs on those L positions (:mod:`alignclip_plugins.models.text_trim`).
Each loader worker memory-maps the sidecars of the shards it reads and keeps those of the
shards in upstream's shuffle buffer open (:mod:`alignclip_plugins.io.shard_cache`; opening a
sidecar parses its ``samples.jsonl``; a cache of 4 shards re-opened one for nearly every
sample of the demo, about 5% of a SoftCLIP run's CPU).

A damaged sidecar (a truncated array file, a bad ``samples.jsonl`` line, a sample without
a row) stops training with an error naming the file, line and key. A sample whose stored
ROI vectors hold NaN or inf is a counted skip instead: its ROIs are left out (all-False
``roi_mask``, so SoftCLIP trains it with hard labels, as a sample without ROIs), the first
keys are logged with their shard and sidecar, and each pass ends with the count. Nothing
non-finite reaches a batch; ``alignclip rois check`` lists every such sample beforehand.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch

from alignclip_plugins.io.shard_cache import DEFAULT_MAX_CACHED_SAMPLES, ShardCache
from alignclip_plugins.rois.storage import ROI_DIM, NonFiniteRois, SidecarReader, sidecar_path

log = logging.getLogger(__name__)

LOGGED_SKIPS = 5  # non-finite samples logged one by one per pass (then only counted)


def pad_id_of(tokenizer) -> int:
    """The id a tokenizer pads with (open_clip's SimpleTokenizer: 0)."""
    inner = getattr(tokenizer, "tokenizer", None)
    pad = getattr(inner, "pad_token_id", None) if inner is not None else None
    return int(pad) if pad is not None else 0


def unpadded(tokens: torch.Tensor, pad_id: int = 0) -> torch.Tensor:
    """A (context,) token row without its right padding."""
    keep = (tokens != pad_id).nonzero()
    return tokens[: int(keep.max()) + 1] if len(keep) else tokens[:1]


class TagTokenizer:
    """Tokens of the tag sentence ``", ".join(tags)``, unpadded (L,) int64.

    With open_clip's ``SimpleTokenizer`` the ids of each distinct tag are computed once and
    the sentence is assembled as ``[sot] ids(t1) [,] ids(t2) ... [eot]`` (truncated like the
    tokenizer truncates): CLIP's BPE encodes words and punctuation separately, so this is
    the sentence's own tokenisation. A tag for which that does not hold (punctuation or
    cleaning that crosses the ", " boundary; checked once per tag) sends its sentence
    through the tokenizer, as does any other tokenizer. Tokenising each sentence in full
    costs about 1 ms per sample in a loader worker; the cached path about 20 µs.
    """

    def __init__(self, tokenizer, pad_id: int = 0) -> None:
        self.tokenizer, self.pad_id = tokenizer, pad_id
        self.fast = (
            type(tokenizer).__name__ == "SimpleTokenizer"
            and getattr(tokenizer, "reduction_fn", None) is None
            and getattr(tokenizer, "context_length", None)
        )
        self.cache: dict[str, list[int] | None] = {}
        if self.fast:
            self.comma = tokenizer.encode(",")
            self.probe = tokenizer.encode("a")

    def _ids(self, tag: str) -> list[int] | None:
        if tag not in self.cache:
            encode = self.tokenizer.encode
            ids = encode(tag)
            joins = (
                ids
                and encode(f"{tag}, a") == ids + self.comma + self.probe
                and encode(f"a, {tag}") == self.probe + self.comma + ids
            )
            self.cache[tag] = ids if joins else None
        return self.cache[tag]

    def __call__(self, tags: Sequence[str]) -> torch.Tensor:
        parts = [self._ids(t) for t in tags] if self.fast else [None]
        if any(p is None for p in parts):
            return unpadded(self.tokenizer([", ".join(tags)])[0], self.pad_id)
        ids = [self.tokenizer.sot_token_id]
        for i, part in enumerate(parts):
            if i:
                ids += self.comma
            ids += part
        ids.append(self.tokenizer.eot_token_id)
        length = self.tokenizer.context_length
        if len(ids) > length:
            ids = ids[:length]
            ids[-1] = self.tokenizer.eot_token_id
        return torch.tensor(ids, dtype=torch.long)


class RoiSampleStage:
    """webdataset stage adding ``roi_features``, ``roi_mask`` and ``tag_text`` to samples."""

    def __init__(
        self,
        root: str | None,
        max_rois: int,
        tokenizer,
        *,
        dim: int = ROI_DIM,
        pad_id: int | None = None,
        max_cached_samples: int = DEFAULT_MAX_CACHED_SAMPLES,
    ) -> None:
        self.root, self.max_rois, self.tokenizer, self.dim = root, int(max_rois), tokenizer, dim
        self.pad_id = pad_id_of(tokenizer) if pad_id is None else int(pad_id)
        self.tags = TagTokenizer(tokenizer, self.pad_id)
        self._readers: ShardCache[SidecarReader] = ShardCache(self._open, len, max_cached_samples)
        self.nonfinite: list[str] = []  # "key of shard" of this pass's skipped samples

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = ShardCache(self._open, len, self._readers.max_samples)
        state["nonfinite"] = []
        return state

    def _open(self, url: str) -> SidecarReader:
        return SidecarReader(sidecar_path(self.root, url), dim=self.dim)

    def reader(self, url: str) -> SidecarReader:
        """The open sidecar of shard ``url``."""
        return self._readers.get(url)

    def fields(self, key: str, url: str) -> dict:
        """The three fields of sample ``key`` of shard ``url`` (no ROIs if they are not finite)."""
        try:
            feats, n, tags = self.reader(url).padded(key, self.max_rois)
        except NonFiniteRois as e:
            self.nonfinite.append(f"{key!r} of {url}")
            if len(self.nonfinite) <= LOGGED_SKIPS:
                log.warning(
                    "softclip ROIs: %s; its ROIs are left out (trained with hard labels)", e
                )
            feats = np.zeros((self.max_rois, self.dim), dtype=np.float16)
            n, tags = 0, []
        mask = torch.zeros(self.max_rois, dtype=torch.bool)
        mask[:n] = True
        return {
            "roi_features": torch.from_numpy(feats),
            "roi_mask": mask,
            "tag_text": self.tags(tags),
        }

    def __call__(self, src: Iterable[dict]) -> Iterator[dict]:
        self.nonfinite = []
        try:
            for sample in src:
                sample.update(self.fields(sample["__key__"], sample["__url__"]))
                yield sample
        finally:
            if self.nonfinite:
                shown = ", ".join(self.nonfinite[:LOGGED_SKIPS])
                log.warning(
                    "softclip ROIs: %d sample(s) of this pass (one loader worker) had NaN or inf "
                    "ROI vectors and were trained without ROIs (first: %s); `alignclip rois "
                    "check` lists them all",
                    len(self.nonfinite),
                    shown,
                )


class PadTokens:
    """Collate variable-length token rows into (B, longest) int64, right-padded."""

    def __init__(self, pad_id: int = 0) -> None:
        self.pad_id = int(pad_id)

    def __call__(self, rows: Sequence[torch.Tensor]) -> torch.Tensor:
        longest = max(len(r) for r in rows)
        out = torch.full((len(rows), longest), self.pad_id, dtype=torch.long)
        for i, row in enumerate(rows):
            out[i, : len(row)] = row
        return out
