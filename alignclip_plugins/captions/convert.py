"""``alignclip captions convert``: a captioned image folder into Flickr8k-layout shards.

Input: an images folder and an annotation file (:mod:`.sources`: Kaggle's ``captions.txt``,
clip_benchmark's ``*_karpathy.txt``, ``Flickr8k.token.txt``, Kaggle Flickr30k's
``results.csv``). Output, in ``OUT`` (:mod:`.layout`): ``<split>-NNNNNN.tar`` shards of
``shard_size`` samples, each ``KEY.<jpg|png|...>`` + ``KEY.txt`` (the image's captions, one a
line; KEY = the image file name without extension, dots replaced by ``_``), samples sorted by
key; ``sizes.json`` (samples per shard); ``convert-config.json`` (what the shards are made
of: the split memberships, shard size, image options) and ``convert-summary.json``.

Splits come from split lists (``--split NAME=FILE``), a seeded shuffle (``--val-size``), or
put every image in ``train``. Images are copied byte for byte (after checking they decode),
or resized (``--image-size``, keep ratio / centre crop / squash, Lanczos) and re-encoded as
JPEG. Each shard is written atomically, so one that exists is complete: a rerun with the
same inputs and options skips it (resume); other options are refused unless ``overwrite``.
Images named in the annotations but absent, unreadable images and images without a caption
are left out, counted and listed in the summary.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import random
import tarfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from alignclip_plugins.captions.layout import SIZES_FILE, read_sizes, split_shards
from alignclip_plugins.captions.sources import Annotations
from alignclip_plugins.io.atomic import (
    atomic_write_text,
    atomic_writer,
    remove_stale_temporaries,
)
from alignclip_plugins.io.shards import shard_name

log = logging.getLogger(__name__)

CONFIG_FILE = "convert-config.json"
SUMMARY_FILE = "convert-summary.json"
RESIZE_MODES = ("keep_ratio", "center_crop", "squash")
IMAGE_EXTENSIONS = ("jpg", "jpeg", "png", "webp")
DEFAULT_SHARD_SIZE = 1000
LISTED = 20  # names listed per problem in the summary


@dataclass(frozen=True)
class ImageOptions:
    """``size`` None: copy the files; else resize (``mode``) and save as JPEG ``quality``."""

    size: int | None = None
    mode: str = "keep_ratio"
    quality: int = 90

    def __post_init__(self) -> None:
        if self.size is not None and self.size < 8:
            raise ValueError(f"--image-size must be >= 8 px, got {self.size}")
        if self.mode not in RESIZE_MODES:
            raise ValueError(f"--resize-mode must be one of {RESIZE_MODES}, got {self.mode!r}")
        if not 1 <= self.quality <= 100:
            raise ValueError(f"--quality must be in [1, 100], got {self.quality}")


@dataclass(frozen=True)
class Sample:
    key: str
    image: Path
    captions: tuple[str, ...]


@dataclass
class Plan:
    """Which sample goes to which split, and what was left out (image file names)."""

    splits: dict[str, list[Sample]]
    missing_images: list[str] = field(default_factory=list)
    without_captions: list[str] = field(default_factory=list)
    listed_without_annotation: list[str] = field(default_factory=list)
    not_in_a_split: int = 0
    renamed_keys: int = 0


def sample_key(image_name: str) -> str:
    """The webdataset key of an image file: its name without extension, dots made ``_``
    (webdataset splits a member name at its first dot)."""
    stem = Path(image_name).stem
    return stem.replace(".", "_")


def val_count(value: float, total: int) -> int:
    """``--val-size``: a number of images (>= 1) or a fraction of them (< 1)."""
    if value < 0:
        raise ValueError(f"--val-size must be >= 0, got {value:g}")
    n = round(value * total) if value < 1 else int(value)
    if value >= 1 and value != int(value):
        raise ValueError(f"--val-size is a whole number of images or a fraction < 1, got {value:g}")
    if n >= total:
        raise ValueError(f"--val-size {value:g} leaves no training image (of {total})")
    return n


def plan_splits(
    annotations: Annotations,
    images: str | os.PathLike,
    split_lists: Mapping[str, Sequence[str]] | None = None,
    val_size: float | None = None,
    seed: int = 0,
) -> Plan:
    """Assign the annotated images to splits (see the module doc); checks the files exist."""
    images = Path(images)
    plan = Plan({})
    usable: dict[str, Sample] = {}
    keys: dict[str, str] = {}
    for name, captions in annotations.captions.items():
        if not captions:
            plan.without_captions.append(name)
            continue
        if not (images / name).is_file():
            plan.missing_images.append(name)
            continue
        key = sample_key(name)
        if key in keys:
            raise ValueError(
                f"images {keys[key]} and {name} would both get the sample key {key!r}; "
                "rename one of them"
            )
        keys[key] = name
        plan.renamed_keys += key != Path(name).stem
        usable[name] = Sample(key, images / name, tuple(captions))
    if split_lists:
        seen: dict[str, str] = {}
        for split, names in split_lists.items():
            chosen = []
            for name in names:
                if name in seen:
                    raise ValueError(f"image {name} is in two split lists: {seen[name]}, {split}")
                seen[name] = split
                if name in usable:
                    chosen.append(usable[name])
                elif name not in annotations.captions:
                    plan.listed_without_annotation.append(name)
            plan.splits[split] = chosen
        plan.not_in_a_split = sum(name not in seen for name in usable)
    elif val_size:
        order = sorted(usable)
        random.Random(seed).shuffle(order)
        n = val_count(val_size, len(order))
        plan.splits = {
            "train": [usable[x] for x in order[n:]],
            "val": [usable[x] for x in order[:n]],
        }
    else:
        plan.splits = {"train": list(usable.values())}
    for split in plan.splits:
        plan.splits[split].sort(key=lambda s: s.key)
    return plan


def _identity(plan: Plan, options: ImageOptions, shard_size: int) -> dict[str, Any]:
    def digest(samples: Iterable[Sample]) -> str:
        text = "\n".join(f"{s.key}\t{s.image.name}\t" + "\x1f".join(s.captions) for s in samples)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    return {
        "format": 1,
        "shard_size": shard_size,
        "image": asdict(options),
        "splits": {
            split: {"samples": len(s), "content": digest(s)} for split, s in plan.splits.items()
        },
    }


class BadImage(ValueError):
    """An image file that cannot be decoded."""


def image_member(path: Path, options: ImageOptions) -> tuple[bytes, str]:
    """``(bytes, extension)`` of a sample's image member."""
    from PIL import Image

    ext = path.suffix.lower().lstrip(".")
    if options.size is None and ext not in IMAGE_EXTENSIONS:
        raise BadImage(f"unsupported image type .{ext} (re-encode it: give --image-size)")
    data = path.read_bytes()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            probe.verify()
        if options.size is None:
            return data, "jpg" if ext == "jpeg" else ext
        with Image.open(io.BytesIO(data)) as image:
            image = resize(image.convert("RGB"), options.size, options.mode)
    except Exception as e:  # PIL raises many types for a broken file
        raise BadImage(f"{type(e).__name__}: {e}") from e
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=options.quality)
    return out.getvalue(), "jpg"


def resize(image, size: int, mode: str):
    """``keep_ratio``: shorter side ``size``; ``center_crop``: then the centre square;
    ``squash``: ``size`` x ``size``. Lanczos."""
    from PIL import Image

    w, h = image.size
    if mode == "squash":
        return image.resize((size, size), Image.Resampling.LANCZOS)
    scale = size / min(w, h)
    image = image.resize(
        (max(size, round(w * scale)), max(size, round(h * scale))), Image.Resampling.LANCZOS
    )
    if mode == "center_crop":
        w, h = image.size
        left, top = (w - size) // 2, (h - size) // 2
        image = image.crop((left, top, left + size, top + size))
    return image


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def write_shard(path: Path, samples: Sequence[Sample], options: ImageOptions) -> tuple[int, list]:
    """Write one shard atomically; returns (samples written, [(image name, why) skipped])."""
    bad: list[tuple[str, str]] = []
    written = 0
    # the helper opens a text stream; the tar goes to its binary buffer (nothing is written
    # as text), and the helper flushes, fsyncs and renames it as for any other file
    with atomic_writer(path, "wb") as f, tarfile.open(fileobj=f, mode="w") as tar:
        for sample in samples:
            try:
                data, ext = image_member(sample.image, options)
            except BadImage as e:
                bad.append((sample.image.name, str(e)))
                continue
            _add(tar, f"{sample.key}.{ext}", data)
            _add(tar, f"{sample.key}.txt", ("\n".join(sample.captions) + "\n").encode())
            written += 1
    return written, bad


def _check_config(out: Path, identity: dict, overwrite: bool, splits: Iterable[str]) -> None:
    path = out / CONFIG_FILE
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        previous = None
    existing = [p for split in splits for p in split_shards(out, split)]
    if previous is None and existing and not overwrite:
        raise ValueError(
            f"{out} already holds shards ({existing[0].name}, ...) not written by 'alignclip "
            "captions convert' (no convert-config.json); use another --out, or --overwrite"
        )
    if previous is not None and previous != identity:
        if not overwrite:
            changed = sorted(
                k for k in set(previous) | set(identity) if previous.get(k) != identity.get(k)
            )
            raise ValueError(
                f"{out} holds shards made from other inputs or options (differences: "
                f"{', '.join(changed)}); use another --out, or pass --overwrite to rewrite them"
            )
    if overwrite or (previous is not None and previous != identity):
        for shard in existing:
            shard.unlink()
    atomic_write_text(path, json.dumps(identity, indent=2, sort_keys=True) + "\n")


def _shard_stats(path: Path) -> Counter:
    """Captions per sample of an existing shard (its .txt members)."""
    from alignclip_plugins.captions.choice import caption_lines
    from alignclip_plugins.objects.captions import iter_captions

    return Counter(len(caption_lines(c.text)) for c in iter_captions(path))


def convert(
    plan: Plan,
    out: str | os.PathLike,
    options: ImageOptions = ImageOptions(),
    shard_size: int = DEFAULT_SHARD_SIZE,
    overwrite: bool = False,
    progress: bool = True,
    source: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the shards of ``plan`` into ``out``; returns (and writes) the summary."""
    from tqdm import tqdm

    if shard_size < 1:
        raise ValueError(f"--shard-size must be >= 1, got {shard_size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(out, ".tar")
    _check_config(out, _identity(plan, options, shard_size), overwrite, plan.splits)
    sizes = read_sizes(out)
    bad: list[tuple[str, str]] = []
    written = reused = 0
    per_split: dict[str, dict[str, Any]] = {}
    total = sum(len(s) for s in plan.splits.values())
    with tqdm(
        total=total, unit="img", desc="convert", disable=not progress, dynamic_ncols=True
    ) as bar:
        for split, samples in plan.splits.items():
            histogram: Counter = Counter()
            names = []
            for index, start in enumerate(range(0, len(samples), shard_size)):
                chunk = samples[start : start + shard_size]
                path = out / shard_name(split, index)
                bar.set_postfix_str(path.name)
                if path.exists():
                    reused += 1
                    stats = _shard_stats(path)
                else:
                    _, skipped = write_shard(path, chunk, options)
                    bad += skipped
                    written += 1
                    skipped_names = {name for name, _ in skipped}
                    stats = Counter(
                        len(s.captions) for s in chunk if s.image.name not in skipped_names
                    )
                sizes[path.name] = sum(stats.values())
                histogram.update(stats)
                names.append(path.name)
                bar.update(len(chunk))
            per_split[split] = {
                "images": sum(histogram.values()),
                "captions": sum(k * n for k, n in histogram.items()),
                "captions_per_image": {str(k): n for k, n in sorted(histogram.items())},
                "shards": names,
            }
    atomic_write_text(out / SIZES_FILE, json.dumps(dict(sorted(sizes.items())), indent=2) + "\n")
    summary = {
        "source": dict(source or {}),
        "splits": per_split,
        "shards_written": written,
        "shards_reused": reused,
        "missing_images": len(plan.missing_images),
        "images_without_captions": len(plan.without_captions),
        "listed_without_annotation": len(plan.listed_without_annotation),
        "not_in_a_split": plan.not_in_a_split,
        "unreadable_images": len(bad),
        "renamed_keys": plan.renamed_keys,
        "examples": {
            "missing_images": plan.missing_images[:LISTED],
            "images_without_captions": plan.without_captions[:LISTED],
            "listed_without_annotation": plan.listed_without_annotation[:LISTED],
            "unreadable_images": [f"{name}: {why}" for name, why in bad[:LISTED]],
        },
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    for name, why in bad[:5]:
        log.warning("unreadable image %s left out: %s", name, why)
    return summary


def format_summary(summary: Mapping[str, Any]) -> str:
    """A few lines for the terminal."""
    lines = []
    for split, s in summary["splits"].items():
        per = ", ".join(f"{n} with {k}" for k, n in s["captions_per_image"].items())
        lines.append(
            f"{split}: {s['images']:,} images, {s['captions']:,} captions ({per or 'none'}), "
            f"{len(s['shards'])} shards"
        )
    lines.append(
        f"shards: {summary['shards_written']} written, {summary['shards_reused']} already done"
    )
    for name in (
        "missing_images",
        "images_without_captions",
        "unreadable_images",
        "listed_without_annotation",
        "not_in_a_split",
        "renamed_keys",
    ):
        if summary.get(name):
            example = (summary.get("examples") or {}).get(name) or []
            lines.append(
                f"{name.replace('_', ' ')}: {summary[name]:,}"
                + (f" (e.g. {example[0]})" if example else "")
            )
    return "\n".join(lines)
