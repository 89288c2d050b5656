"""The per-shard sidecar cache of the sample stages: bounded by samples, least recent out."""

from __future__ import annotations

from alignclip_plugins.io.shard_cache import ShardCache


def test_interleaved_shards_within_the_bound_are_read_once():
    loads = []
    cache = ShardCache(lambda url: loads.append(url) or [url] * 10, len, max_samples=40)
    stream = [f"s{i}" for _ in range(10) for i in range(4)]  # a shuffle buffer's interleaving
    assert all(cache.get(url) == [url] * 10 for url in stream)
    assert loads == ["s0", "s1", "s2", "s3"] and cache.reads == 4
    assert len(cache) == 4 and cache.samples == 40


def test_least_recently_used_shards_leave_beyond_the_bound():
    cache = ShardCache(lambda url: [url] * 10, len, max_samples=25)
    for url in ["a", "b", "a", "c"]:  # c pushes out b, the least recently used
        cache.get(url)
    assert len(cache) == 2 and cache.samples == 20
    cache.get("a")
    assert cache.reads == 3  # a stayed
    cache.get("b")
    assert cache.reads == 4


def test_a_shard_above_the_bound_alone_is_still_kept():
    cache = ShardCache(lambda url: [url] * 100, len, max_samples=10)
    cache.get("big")
    cache.get("big")
    assert len(cache) == 1 and cache.reads == 1
