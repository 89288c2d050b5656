import torch

from alignclip_plugins.epoch_counts import EpochCounts


def test_counts_sum_ints_and_tensors_and_pop_resets():
    counts = EpochCounts(examples=2)
    counts.add("samples", 4)
    counts.add("samples", torch.tensor(3))
    counts.add("bad")
    for name in ("a", "b", "c"):
        counts.note("bad", name)
    totals, examples = counts.pop()
    assert totals == {"samples": 7, "bad": 1} and type(totals["samples"]) is int
    assert examples == {"bad": ["a", "b"]}
    assert counts.pop() == ({}, {})
