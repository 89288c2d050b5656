"""Dict batches: which sample fields travel, how they are collated and moved to the device."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

Collate = Callable[[list], Any]

BASE_FIELDS = ("image", "text")


def stack(values: Sequence[torch.Tensor]) -> torch.Tensor:
    """Collate equally shaped tensors into one (B, ...) tensor."""
    return torch.stack(list(values))


def pad_ids(
    values: Sequence[Sequence[int]], pad: int = -1, width: int | None = None
) -> torch.Tensor:
    """Collate variable-length id lists into a LongTensor (B, M) padded with ``pad``.

    ``M`` is the longest list, or ``width`` when given (longer lists are an error).
    """
    longest = max((len(v) for v in values), default=0)
    width = longest if width is None else width
    if longest > width:
        raise ValueError(f"an id list has {longest} entries, more than the fixed width {width}")
    out = torch.full((len(values), width), pad, dtype=torch.long)
    for row, ids in enumerate(values):
        if len(ids):
            out[row, : len(ids)] = torch.as_tensor(list(ids), dtype=torch.long)
    return out


def describe_sample(sample: dict) -> str:
    """'sample KEY of shard URL', for error messages."""
    return f"sample {sample.get('__key__', '?')!r} of {sample.get('__url__', '?')}"


class SelectFields:
    """webdataset map: keep ``image``, ``text`` and the plugin fields of a sample dict."""

    def __init__(self, fields: Sequence[str]) -> None:
        self.fields = tuple(BASE_FIELDS) + tuple(f for f in fields if f not in BASE_FIELDS)

    def __call__(self, sample: dict) -> dict:
        missing = [f for f in self.fields if f not in sample]
        if missing:
            raise KeyError(
                f"{describe_sample(sample)} has no field(s) {missing}: a plugin declared them in "
                f"octrain_collate_fields but no sample stage added them"
            )
        return {f: sample[f] for f in self.fields}


class DictCollator:
    """Collates a list of sample dicts into one dict batch (picklable for loader workers)."""

    def __init__(self, collate: dict[str, Collate]) -> None:
        self.collate = {"image": stack, "text": stack, **collate}

    def __call__(self, samples: list[dict]) -> dict:
        return {f: fn([s[f] for s in samples]) for f, fn in self.collate.items()}


def to_device(batch, *, device, input_dtype=None) -> dict:
    """A batch (upstream's ``(images, texts)`` tuple or a dict) as a dict on ``device``.

    Images take ``input_dtype`` (upstream's precision rule); other tensors keep their dtype.
    """
    if isinstance(batch, (tuple, list)):
        images, texts = batch
        batch = {"image": images, "text": texts}
    out = {}
    for key, value in batch.items():
        if key == "image":
            out[key] = value.to(device=device, dtype=input_dtype, non_blocking=True)
        elif isinstance(value, torch.Tensor):
            out[key] = value.to(device=device, non_blocking=True)
        else:
            out[key] = value
    return out
