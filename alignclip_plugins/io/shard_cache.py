"""Per-shard sidecar contents held by a loader worker, bounded by the samples they cover.

The plugins' sample stages look each sample up in its shard's sidecar (object ids, ROI
features). They run after upstream's sample shuffle (a buffer of 5,000 samples), so a
worker sees the samples of every shard in that buffer interleaved: with shards of 512, about
ten at once. A cache of a fixed few shards would then read (and parse) a sidecar again for
nearly every sample. :class:`ShardCache` keeps shards by least-recent use until the samples
they cover exceed ``max_samples`` (default: 40 times the shuffle buffer), so the buffer's
shards stay in memory whatever the shard size, and memory stays bounded on large datasets.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Generic, TypeVar

V = TypeVar("V")

# Enough for the shards a shuffle buffer of upstream's size (5,000 samples) spans.
DEFAULT_MAX_CACHED_SAMPLES = 200_000


class ShardCache(Generic[V]):
    """``get(url)``: ``load(url)``, kept while the cached shards cover <= ``max_samples``.

    ``size(value)`` is the number of samples a loaded value covers; the most recent shard is
    always kept, even alone above the bound. ``reads`` counts the calls of ``load``.
    """

    def __init__(
        self,
        load: Callable[[str], V],
        size: Callable[[V], int],
        max_samples: int = DEFAULT_MAX_CACHED_SAMPLES,
    ) -> None:
        self.load, self.size, self.max_samples = load, size, int(max_samples)
        self._values: OrderedDict[str, V] = OrderedDict()
        self.samples = 0  # covered by the cached shards
        self.reads = 0

    def __len__(self) -> int:
        return len(self._values)

    def get(self, url: str) -> V:
        if url in self._values:
            self._values.move_to_end(url)
            return self._values[url]
        value = self.load(url)
        self.reads += 1
        self._values[url] = value
        self.samples += self.size(value)
        while len(self._values) > 1 and self.samples > self.max_samples:
            _, old = self._values.popitem(last=False)
            self.samples -= self.size(old)
        return value
