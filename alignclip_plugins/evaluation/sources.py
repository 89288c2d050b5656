"""Evaluation data as streams of preprocessed image batches.

A :class:`Source` is a dataset of labelled images (class index per image) or captioned images
(one or more captions per image) from any of:

* a clip_benchmark dataset (see :mod:`alignclip_plugins.evaluation.benchmarks`);
* a folder with one sub-folder of images per class (torchvision ``ImageFolder`` order);
* webdataset shards with an image member (``jpg``/``png``/``jpeg``/``webp``) and ``cls`` (a
  class index) or ``txt`` (captions, one a line) members;
* a plain list of image files, optionally with a crop box per file.

Batches (:class:`Batch`) are loaded by a torch ``DataLoader`` with worker processes and come
with each image's key and, on request, a small JPEG thumbnail for pictures.

A sample that cannot be read (an unreadable shard, an undecodable image, a missing member)
stops the evaluation with an :class:`~alignclip_plugins.evaluation.shards.EvalDataError`
naming the shard or file and the key, raised in the main process: a worker sends a
:class:`Failure` instead of raising, so that no worker traceback reaches the user.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, IterableDataset, get_worker_info
from tqdm import tqdm

from alignclip_plugins.captions.choice import caption_lines
from alignclip_plugins.evaluation.shards import EvalDataError, image_error, open_image, read_shard
from alignclip_plugins.io.shards import expand_shards

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".ppm", ".tif", ".tiff")
WDS_IMAGE_KEYS = ("jpg", "png", "jpeg", "webp")

LABELS = "labels"
CAPTIONS = "captions"


@dataclass
class Batch:
    """Preprocessed images (B, 3, H, W), their targets (class index, caption list or None),
    keys, and JPEG thumbnails when asked for."""

    images: torch.Tensor
    targets: list
    keys: list[str]
    thumbnails: list[bytes] | None = None

    def __getitem__(self, i: int):
        """``batch[0]`` images, ``batch[1]`` targets (tuple-like, as plain batches are)."""
        return (self.images, self.targets, self.keys, self.thumbnails)[i]


def unpack(batch) -> tuple[torch.Tensor, list, list[str] | None, list[bytes] | None]:
    """``(images, targets, keys or None, thumbnails or None)`` of a :class:`Batch` or of a
    plain ``(images, targets[, keys[, thumbnails]])`` tuple."""
    if isinstance(batch, Batch):
        return batch.images, batch.targets, batch.keys, batch.thumbnails
    items = (*batch, None, None)
    return items[0], list(items[1]), items[2], items[3]


class Preprocess:
    """The model's image transform, plus a square JPEG thumbnail of ``thumbnail`` px if > 0.

    A picklable callable, so DataLoader workers can run it.
    """

    def __init__(self, transform: Callable, thumbnail: int = 0):
        self.transform = transform
        self.thumbnail = thumbnail

    def __call__(self, image: Image.Image):
        image = image.convert("RGB")
        x = self.transform(image)
        if not self.thumbnail:
            return x
        return x, thumbnail_bytes(image, self.thumbnail)


def thumbnail_bytes(image: Image.Image, size: int) -> bytes:
    """A ``size`` x ``size`` centre crop of ``image`` (shorter side resized), as JPEG bytes."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    thumb = image.crop((left, top, left + side, top + side)).resize((size, size), Image.BICUBIC)
    buf = io.BytesIO()
    thumb.convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


class TransformSlot:
    """A transform set after the dataset is built (datasets take theirs at construction)."""

    def __init__(self):
        self.fn: Callable | None = None

    def __call__(self, image):
        if self.fn is None:
            raise RuntimeError("no transform set on this dataset")
        return self.fn(image)


@dataclass(frozen=True)
class Failure:
    """A sample that could not be read, in place of an item or a batch (see the module
    docstring); ``message`` names the shard or file and the key."""

    message: str


def collate(items: Sequence[tuple[Any, Any, str] | Failure]) -> Batch | Failure:
    """``[(image or (image, thumbnail), target, key), ...]`` -> :class:`Batch` (the first
    :class:`Failure` among the items instead, if any)."""
    failed = next((it for it in items if isinstance(it, Failure)), None)
    if failed is not None:
        return failed
    first = items[0][0]
    if isinstance(first, tuple):
        images = torch.stack([it[0][0] for it in items])
        thumbs = [it[0][1] for it in items]
    else:
        images, thumbs = torch.stack([it[0] for it in items]), None
    return Batch(images, [it[1] for it in items], [it[2] for it in items], thumbs)


class Indexed(Dataset):
    """A map-style ``(image, target)`` dataset as ``(image, target, str(index))``."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        try:
            image, target = self.dataset[i]
        except Exception as e:  # an undecodable or unreadable image file
            samples = getattr(self.dataset, "samples", None)
            where = samples[i][0] if samples is not None else f"image {i}"
            return Failure(f"cannot read image {where} ({image_error(e)})")
        return image, target, str(i)


class Counted(IterableDataset):
    """An iterable ``(image, target)`` dataset as ``(image, target, "worker:n")``."""

    def __init__(self, dataset):
        self.dataset = dataset

    def __iter__(self):
        info = get_worker_info()
        worker = info.id if info is not None else 0
        n = 0
        try:
            for n, (image, target) in enumerate(self.dataset):
                yield image, target, f"{worker}:{n}"
        except Exception as e:  # an unreadable shard or undecodable image of the dataset
            yield Failure(f"cannot read sample {n} of loader worker {worker}: {e}")


class ImageFiles(Dataset):
    """Image files (optionally cropped to a box ``(x1, y1, x2, y2)`` in pixels) with targets."""

    def __init__(
        self,
        paths: Sequence[str | os.PathLike],
        transform: Callable,
        targets: Sequence | None = None,
        boxes: Sequence[Sequence[float] | None] | None = None,
    ):
        self.paths = [Path(p) for p in paths]
        self.transform = transform
        self.targets = list(targets) if targets is not None else [None] * len(self.paths)
        self.boxes = list(boxes) if boxes is not None else [None] * len(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        path = self.paths[i]
        try:
            image = open_image(path, str(path)).convert("RGB")
        except EvalDataError as e:
            return Failure(str(e))
        if self.boxes[i] is not None:
            image = image.crop(crop_box(self.boxes[i], image.size))
        return self.transform(image), self.targets[i], str(path)


def crop_box(box: Sequence[float], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """A float box ``(x1, y1, x2, y2)`` rounded to pixels and clipped to an image of ``size``;
    a box that would be empty keeps at least one pixel."""
    w, h = size
    x1, y1, x2, y2 = (int(round(float(v))) for v in box)
    x1, y1 = min(max(x1, 0), w - 1), min(max(y1, 0), h - 1)
    x2, y2 = min(max(x2, x1 + 1), w), min(max(y2, y1 + 1), h)
    return x1, y1, x2, y2


class ShardSamples(IterableDataset):
    """Samples of webdataset shards as ``(image, target, key)``; shards are split over workers.

    ``field`` is ``"cls"`` (target: int) or ``"txt"`` (target: list of caption lines). A sample
    lacking its image or field, an undecodable image or an unreadable shard ends the worker's
    stream with a :class:`Failure` naming the sample and its shard.
    """

    def __init__(self, urls: list[str], field: str, transform: Callable):
        self.urls = urls
        self.field = field
        self.transform = transform

    def __iter__(self):
        info = get_worker_info()
        urls = self.urls if info is None else self.urls[info.id :: info.num_workers]
        try:
            for url in urls:
                for sample in read_shard(url):
                    yield self._item(sample, url)
        except EvalDataError as e:
            yield Failure(str(e))

    def _item(self, sample: dict, url: str) -> tuple[Any, Any, str]:
        key = sample.get("__key__")
        image_key = next((k for k in WDS_IMAGE_KEYS if k in sample), None)
        missing = ([] if image_key else ["image"]) + ([] if self.field in sample else [self.field])
        if missing:
            raise EvalDataError(
                f"sample {key!r} of {url} lacks {missing}; expected an image member "
                f"({', '.join(WDS_IMAGE_KEYS)}) and a {self.field!r} member"
            )
        where = f"{key!r} of {url}"
        image = self.transform(open_image(sample[image_key], where))
        raw = sample[self.field]
        text = raw.decode("utf-8") if isinstance(raw, bytes) else str(raw)
        if self.field == "cls":
            try:
                target: Any = int(text.strip())
            except ValueError:
                raise EvalDataError(
                    f"sample {where}: 'cls' must be a class index, got {text[:40]!r}"
                ) from None
        else:
            target = caption_lines(text)
            if not target:
                raise EvalDataError(f"sample {where}: empty caption ('txt' member)")
        return image, target, str(key)


@dataclass
class Source:
    """A dataset to evaluate on: labelled or captioned images (see the module docstring)."""

    slug: str  # short name for result files
    kind: str  # LABELS or CAPTIONS
    where: str  # where it lives, for messages
    make: Callable[[Preprocess], Dataset | IterableDataset]  # the dataset, given a transform
    classnames: list[str] | None = None
    templates: list | dict | None = None  # the dataset's own prompts (clip_benchmark style)
    size: int | None = None  # number of images, when known
    info: dict[str, Any] = field(default_factory=dict)

    def batches(
        self,
        preprocess: Callable,
        batch_size: int = 256,
        workers: int = 4,
        thumbnails: int = 0,
        desc: str | None = None,
    ) -> Iterator[Batch]:
        """Stream the dataset through ``preprocess`` in batches, with a progress bar."""
        dataset = self.make(Preprocess(preprocess, thumbnails))
        size = self.size
        if size is None and not isinstance(dataset, IterableDataset):
            size = len(dataset)
        if isinstance(dataset, IterableDataset):
            urls = getattr(dataset, "urls", None)
            if urls is not None:  # idle workers on fewer shards than workers only cost start-up
                workers = min(workers, len(urls))
        loader = DataLoader(
            dataset,
            batch_size=batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=collate,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=False,
        )
        seen = 0
        with tqdm(total=size, desc=desc or self.slug, unit="img", unit_scale=True) as bar:
            for batch in loader:
                if isinstance(batch, Failure):
                    raise EvalDataError(batch.message)
                seen += len(batch.keys)
                bar.update(len(batch.keys))
                yield batch
        if seen == 0:
            raise EvalDataError(f"no images in {self.where}")


def webdataset_source(
    spec: str | Sequence[str], kind: str, slug: str, classnames: list[str] | None = None
) -> Source:
    """Webdataset shards with ``cls`` labels (``kind=LABELS``) or ``txt`` captions."""
    urls = expand_shards(spec)
    field_ = "cls" if kind == LABELS else "txt"
    return Source(
        slug=slug,
        kind=kind,
        where=f"webdataset {spec}",
        make=lambda transform: ShardSamples(urls, field_, transform),
        classnames=classnames,
        info={"shards": len(urls)},
    )


def folder_source(root: str | os.PathLike, slug: str, classnames: list[str] | None) -> Source:
    """One sub-folder of images per class, classes in sorted folder order.

    Without ``classnames`` the folder names are used, underscores as spaces.
    """
    from torchvision.datasets import ImageFolder

    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"image folder {root} does not exist")
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise ValueError(
            f"{root} has no class sub-folders; expected {root}/<class>/<image>.jpg, one folder "
            f"per class"
        )
    if classnames is None:
        classnames = [name.replace("_", " ") for name in folders]
    elif len(classnames) != len(folders):
        raise ValueError(
            f"{len(classnames)} class names for {len(folders)} class folders in {root}; the "
            f"class-name file must list one name per folder, in sorted folder order"
        )
    try:
        probe = ImageFolder(str(root), allow_empty=True)
    except Exception as e:
        raise ValueError(f"cannot read image folder {root}: {e}") from e
    if not probe.samples:
        raise ValueError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {root}"
        )
    return Source(
        slug=slug,
        kind=LABELS,
        where=f"image folder {root}",
        make=lambda transform: Indexed(
            ImageFolder(str(root), transform=transform, allow_empty=True)
        ),
        classnames=classnames,
        size=len(probe.samples),
    )


def files_source(
    paths: Sequence[str | os.PathLike],
    slug: str,
    boxes: Sequence[Sequence[float] | None] | None = None,
    where: str = "",
) -> Source:
    """Plain image files (checked to exist), optionally with a crop box each."""
    missing = [str(p) for p in paths if not Path(p).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(paths)} images do not exist{' in ' + where if where else ''}, "
            f"e.g. {missing[0]}"
        )
    return Source(
        slug=slug,
        kind=LABELS,
        where=where or f"{len(paths)} image files",
        make=lambda transform: ImageFiles(paths, transform, boxes=boxes),
        size=len(paths),
    )


def image_files(directory: str | os.PathLike) -> list[Path]:
    """The image files directly in ``directory``, sorted by name."""
    directory = Path(directory)
    return sorted(
        p for p in directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS
    )
