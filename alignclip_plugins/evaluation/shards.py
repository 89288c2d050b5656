"""Streaming labelled or captioned images out of webdataset shards for evaluation."""

from __future__ import annotations

from collections.abc import Iterator

import torch

IMAGE_KEYS = "png;jpg;jpeg;webp"


def iterate_batches(
    urls: str | list[str], preprocess, fields: tuple[str, ...], batch_size: int = 256
) -> Iterator[tuple[torch.Tensor, list[tuple]]]:
    """Yield ``(images (B, 3, H, W), [(field values of each sample), ...])`` in shard order.

    ``fields`` are webdataset member extensions (``"cls"``, ``"txt"``) or ``"__key__"``.
    A sample lacking one of them stops evaluation with an error naming it.
    """
    import webdataset as wds

    dataset = wds.WebDataset(urls, shardshuffle=False).decode("pil")
    images: list[torch.Tensor] = []
    rows: list[tuple] = []
    n = 0
    for sample in dataset:
        n += 1
        image = next((sample[k] for k in IMAGE_KEYS.split(";") if k in sample), None)
        missing = [f for f in fields if f not in sample] + ([] if image is not None else ["image"])
        if missing:
            raise ValueError(
                f"sample {sample.get('__key__')!r} of {sample.get('__url__')} lacks {missing}; "
                f"expected members {IMAGE_KEYS} and {', '.join(fields)}"
            )
        images.append(preprocess(image.convert("RGB")))
        rows.append(tuple(sample[f] for f in fields))
        if len(images) == batch_size:
            yield torch.stack(images), rows
            images, rows = [], []
    if images:
        yield torch.stack(images), rows
    if n == 0:
        raise ValueError(f"no samples in {urls}")


def as_int(value) -> int:
    """A ``.cls`` member (int, bytes or str) as an int."""
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)


def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
