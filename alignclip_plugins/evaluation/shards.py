"""Reading evaluation images out of webdataset shards, with faults named.

Evaluation reports numbers over a fixed set of images: a shard that cannot be read (a
truncated download) or an image that cannot be decoded stops the task with an
:class:`EvalDataError` naming the shard and the sample key; nothing is skipped, so a
result always covers the whole set. Shards are read with webdataset (local files,
``pipe:`` and remote URLs alike), one shard at a time so that a fault is pinned to it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator

import torch
from PIL import Image

from alignclip_plugins.io.shards import read_error_message

IMAGE_KEYS = "png;jpg;jpeg;webp"


class EvalDataError(ValueError):
    """An evaluation sample or shard that cannot be read; the message names it."""


def read_shard(url: str) -> Iterator[dict]:
    """The raw samples (``{"__key__", "__url__", ext: bytes}``) of one shard, in order.

    A shard that stops being readable raises :class:`EvalDataError` naming it and the last
    sample key read.
    """
    import webdataset as wds

    pipeline = wds.DataPipeline(wds.SimpleShardList([url]), wds.tarfile_to_samples())
    last = None
    try:
        for sample in pipeline:
            last = sample.get("__key__")
            yield sample
    except EvalDataError:
        raise
    except Exception as e:  # tarfile.ReadError, OSError, EOFError from a damaged shard
        # webdataset appends " @ <stream>" to the message and the stream and URL to the args
        text = e.args[0] if e.args and isinstance(e.args[0], str) else str(e)
        reason = f"{type(e).__name__}: {text.split(' @ ', 1)[0]}"
        raise EvalDataError(read_error_message(url, reason, last)) from None


def open_image(data: bytes | str | os.PathLike, where: str) -> Image.Image:
    """The decoded image of ``data`` (bytes or a file); :class:`EvalDataError` naming
    ``where`` when it cannot be decoded."""
    try:
        image = Image.open(io.BytesIO(data) if isinstance(data, bytes) else data)
        image.load()
    except Exception as e:
        raise EvalDataError(f"cannot decode image {where} ({image_error(e)})") from None
    return image


def image_error(error: Exception) -> str:
    """``Type: reason`` of an image decoding error, without PIL's stream repr."""
    reason = str(error).split(" <_io.", 1)[0].strip()
    return f"{type(error).__name__}: {reason}" if reason else type(error).__name__


def iterate_batches(
    urls: str | list[str], preprocess, fields: tuple[str, ...], batch_size: int = 256
) -> Iterator[tuple[torch.Tensor, list[tuple]]]:
    """Yield ``(images (B, 3, H, W), [(field values of each sample), ...])`` in shard order.

    ``fields`` are webdataset member extensions (``"cls"``, ``"txt"``) or ``"__key__"``.
    A sample lacking one of them, an undecodable image or an unreadable shard stops with an
    :class:`EvalDataError` naming the sample and its shard.
    """
    from alignclip_plugins.io.shards import expand_patterns

    images: list[torch.Tensor] = []
    rows: list[tuple] = []
    n = 0
    for url in expand_patterns(urls):
        for sample in read_shard(url):
            n += 1
            key = sample.get("__key__")
            image_key = next((k for k in IMAGE_KEYS.split(";") if k in sample), None)
            missing = [f for f in fields if f not in sample] + ([] if image_key else ["image"])
            if missing:
                raise EvalDataError(
                    f"sample {key!r} of {url} lacks {missing}; expected members {IMAGE_KEYS} "
                    f"and {', '.join(fields)}"
                )
            image = open_image(sample[image_key], f"{key!r} of {url}")
            images.append(preprocess(image.convert("RGB")))
            rows.append(tuple(sample[f] for f in fields))
            if len(images) == batch_size:
                yield torch.stack(images), rows
                images, rows = [], []
    if images:
        yield torch.stack(images), rows
    if n == 0:
        raise EvalDataError(f"no samples in {urls}")


def as_int(value) -> int:
    """A ``.cls`` member (int, bytes or str) as an int."""
    if isinstance(value, bytes):
        value = value.decode()
    return int(value)


def as_text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
