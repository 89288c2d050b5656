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

from PIL import Image

from alignclip_plugins.io.shards import read_error_message


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
