"""LAION's clip_benchmark as the source of the papers' downstream datasets, and its
model-loading seam fitted with a loader for this project's checkpoints.

Datasets are built by ``clip_benchmark.datasets.builder.build_dataset`` (no dataset code of
ours); before that, the expected on-disk layout of the known datasets (:data:`BENCHMARKS`) is
checked, so a missing or misplaced dataset gives an error that names what was expected where
(clip_benchmark itself would try to download it, or fail deep inside torchvision).

The loader (:func:`load_for_clip_benchmark`) is registered as clip_benchmark model type
``alignclip`` by :func:`register`, so clip_benchmark's own command line evaluates our
checkpoints too::

    python -m alignclip_plugins.evaluation.benchmarks eval --model_type alignclip \\
        --model ViT-B-32 --pretrained logs/run/checkpoints/epoch_32.pt \\
        --dataset cifar10 --dataset_root /data/cifar10
"""

from __future__ import annotations

import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import IterableDataset

from alignclip_plugins.evaluation.sources import CAPTIONS, LABELS, Counted, Indexed, Source

MODEL_TYPE = "alignclip"
INSTALL_HINT = "install it with: pip install 'alignclip-plugins[eval]' (or clip-benchmark>=1.6)"


@dataclass(frozen=True)
class Benchmark:
    """A clip_benchmark dataset this project evaluates on, and its expected layout.

    ``required``: groups of alternatives, relative to the dataset root; ``{split}`` is
    replaced by the split. Every group needs one existing path (glob patterns allowed).
    """

    name: str  # clip_benchmark's name
    slug: str  # result-file name
    kind: str  # LABELS or CAPTIONS
    layout: str  # the layout, for documentation and errors
    required: tuple[tuple[str, ...], ...]
    aliases: tuple[str, ...] = ()
    annotation: str | None = None  # the group index of the annotation file, when overridable


BENCHMARKS: tuple[Benchmark, ...] = (
    Benchmark(
        "imagenet1k",
        "imagenet",
        LABELS,
        "torchvision's ImageNet: ROOT/ILSVRC2012_devkit_t12.tar.gz (or the meta.bin torchvision "
        "makes from it) and ROOT/val/<wnid>/*.JPEG (or ROOT/ILSVRC2012_img_val.tar)",
        (("meta.bin", "ILSVRC2012_devkit_t12.tar.gz"), ("val", "ILSVRC2012_img_val.tar")),
        ("imagenet", "imagenet-1k", "in1k"),
    ),
    Benchmark(
        "pets",
        "pets",
        LABELS,
        "torchvision's OxfordIIITPet: ROOT/oxford-iiit-pet/images/*.jpg and "
        "ROOT/oxford-iiit-pet/annotations/{split}.txt (split test or trainval)",
        (("oxford-iiit-pet/images",), ("oxford-iiit-pet/annotations/{split}.txt",)),
        ("oxford-pets", "oxford_pets", "oxford-iiit-pet", "pet"),
    ),
    Benchmark(
        "dtd",
        "dtd",
        LABELS,
        "torchvision's DTD: ROOT/dtd/dtd/images/<class>/*.jpg and ROOT/dtd/dtd/labels/{split}1.txt",
        (("dtd/dtd/images",), ("dtd/dtd/labels/{split}1.txt",)),
        ("textures", "describable-textures"),
    ),
    Benchmark(
        "food101",
        "food101",
        LABELS,
        "torchvision's Food101: ROOT/food-101/images/<class>/*.jpg and "
        "ROOT/food-101/meta/{split}.json",
        (("food-101/images",), ("food-101/meta/{split}.json",)),
        ("food-101", "food"),
    ),
    Benchmark(
        "flowers",
        "flowers102",
        LABELS,
        "torchvision's Flowers102: ROOT/flowers-102/jpg/image_*.jpg, "
        "ROOT/flowers-102/imagelabels.mat and ROOT/flowers-102/setid.mat (needs scipy)",
        (
            ("flowers-102/jpg",),
            ("flowers-102/imagelabels.mat",),
            ("flowers-102/setid.mat",),
        ),
        ("flowers102", "flowers-102", "oxford-flowers"),
    ),
    Benchmark(
        "sun397",
        "sun397",
        LABELS,
        "torchvision's SUN397: ROOT/SUN397/ClassName.txt and ROOT/SUN397/<l>/<class>/sun_*.jpg "
        "(clip_benchmark uses all images; there is no official split)",
        (("SUN397/ClassName.txt",),),
        ("sun", "sun-397"),
    ),
    Benchmark(
        "caltech101",
        "caltech101",
        LABELS,
        "ROOT/caltech101/101_ObjectCategories/<class>/image_*.jpg (the extracted "
        "101_ObjectCategories.tar.gz; clip_benchmark uses all images)",
        (("caltech101/101_ObjectCategories",),),
        ("caltech-101",),
    ),
    Benchmark(
        "flickr30k",
        "flickr30k",
        CAPTIONS,
        "ROOT/*.jpg (the flickr30k_images) and ROOT/flickr30k_{split}_karpathy.txt (a header "
        "line, then 'image.jpg,caption' lines; the Karpathy test split has 1,000 images x 5 "
        "captions), or --annotation-file",
        (("flickr30k_{split}_karpathy.txt",), ("*.jpg",)),
        ("flickr", "flickr-30k", "flickr30k-1k"),
        annotation=0,
    ),
    Benchmark(
        "mscoco_captions",
        "mscoco",
        CAPTIONS,
        "ROOT/val2014/*.jpg (the Karpathy val/test images are in val2014) and "
        "ROOT/coco_{split}_karpathy.json (COCO caption format; the test split has 5,000 "
        "images x 5 captions), or --annotation-file",
        (("coco_{split}_karpathy.json",), ("val2014",)),
        ("mscoco", "coco", "ms-coco", "coco5k", "mscoco5k"),
        annotation=0,
    ),
)

WDS_LAYOUT = (
    "clip_benchmark's webdataset layout: ROOT/{split}/nshards.txt, ROOT/{split}/0.tar ... "
    "(members: an image, and 'cls' for classification or 'txt' captions for retrieval), "
    "ROOT/classnames.txt (classification), ROOT/zeroshot_classification_templates.txt "
    "(optional, '{c}' for the class name), ROOT/dataset_type.txt ('retrieval' for captions)"
)


def _fill(layout: str, root: Path, split: str) -> str:
    """A layout description with the actual root and split."""
    return layout.replace("ROOT", str(root)).replace("{split}", split)


def find_benchmark(name: str) -> Benchmark | None:
    """The known dataset called ``name`` (clip_benchmark's name, our slug or an alias)."""
    key = name.strip().lower()
    for b in BENCHMARKS:
        if key in (b.name, b.slug, *b.aliases):
            return b
    return None


def require_clip_benchmark():
    try:
        import clip_benchmark  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"this dataset is read through LAION's clip_benchmark; {INSTALL_HINT}"
        ) from e


def check_layout(b: Benchmark, root: Path, split: str, annotation_file: str | None) -> None:
    """Raise FileNotFoundError naming what is missing when ``root`` lacks ``b``'s layout."""
    if not root.is_dir():
        raise FileNotFoundError(
            f"dataset {b.slug}: root {root} does not exist; expected {_fill(b.layout, root, split)}"
        )
    missing = []
    for i, group in enumerate(b.required):
        if i == b.annotation and annotation_file:
            if not Path(annotation_file).is_file():
                missing.append(annotation_file)
            continue
        paths = [str(root / p.replace("{split}", split)) for p in group]
        if not any(glob.glob(p) for p in paths):
            missing.append(" or ".join(paths))
    if missing:
        raise FileNotFoundError(
            f"dataset {b.slug} not found under {root}: missing {'; '.join(missing)}. Expected "
            f"{_fill(b.layout, root, split)}. Pass --download "
            f"to let clip_benchmark fetch it where it can (see docs/evaluation.md)"
        )


def check_wds_layout(root: Path, split: str) -> str:
    """Check clip_benchmark's webdataset layout; returns its dataset type."""
    nshards = root / split / "nshards.txt"
    if not nshards.is_file():
        raise FileNotFoundError(f"no {nshards}: expected {_fill(WDS_LAYOUT, root, split)}")
    try:
        n = int(nshards.read_text().strip())
    except ValueError:
        raise ValueError(f"{nshards} must hold the number of shards, an integer") from None
    absent = [
        str(root / split / f"{i}.tar")
        for i in range(n)
        if not (root / split / f"{i}.tar").is_file()
    ]
    if absent:
        raise FileNotFoundError(f"{nshards} says {n} shards but {absent[0]} does not exist")
    type_file = root / "dataset_type.txt"
    kind = type_file.read_text().strip().lower() if type_file.is_file() else "classification"
    if kind == "classification" and not (root / "classnames.txt").is_file():
        raise FileNotFoundError(
            f"{root / 'classnames.txt'} is missing: a classification dataset in clip_benchmark's "
            f"webdataset layout lists its class names there, one a line"
        )
    if kind not in ("classification", "retrieval"):
        raise ValueError(
            f"{type_file}: dataset type {kind!r} is neither classification nor retrieval"
        )
    return kind


def is_wds_root(path: str | os.PathLike, split: str = "test") -> bool:
    return (Path(path) / split / "nshards.txt").is_file()


def benchmark_source(
    name: str,
    root: str | os.PathLike,
    split: str = "test",
    annotation_file: str | None = None,
    download: bool = False,
) -> Source:
    """A clip_benchmark dataset as a :class:`Source`.

    ``name``: one of :data:`BENCHMARKS` (or an alias), ``wds/<name>`` for clip_benchmark's
    webdataset layout, or any other clip_benchmark dataset name (not checked beforehand).
    """
    require_clip_benchmark()
    from clip_benchmark.datasets.builder import build_dataset, get_dataset_default_task

    from alignclip_plugins.evaluation.results import slug
    from alignclip_plugins.evaluation.sources import TransformSlot

    root = Path(root)
    known = find_benchmark(name)
    if name.startswith("wds/"):
        cb_name, short = name, name.split("/", 1)[1] or root.name
        kind = CAPTIONS if check_wds_layout(root, split) == "retrieval" else LABELS
    elif known is not None:
        cb_name, short, kind = known.name, known.slug, known.kind
        if not download:
            check_layout(known, root, split, annotation_file)
    else:
        cb_name, short = name, name
        task = get_dataset_default_task(name)
        kind = CAPTIONS if task == "zeroshot_retrieval" else LABELS
    slot = TransformSlot()
    task = "zeroshot_retrieval" if kind == CAPTIONS else "zeroshot_classification"
    try:
        dataset = build_dataset(
            dataset_name=cb_name,
            root=str(root),
            transform=slot,
            split=split,
            download=download,
            annotation_file=annotation_file or "",
            task=task,
        )
    except (FileNotFoundError, RuntimeError, AssertionError, OSError, KeyError) as e:
        layout = known.layout if known else WDS_LAYOUT if cb_name.startswith("wds/") else None
        expected = f"; expected {_fill(layout, root, split)}" if layout else ""
        raise ValueError(
            f"clip_benchmark could not open dataset {cb_name!r} (split {split!r}) at {root}: "
            f"{type(e).__name__}: {e}{expected}"
        ) from e
    classnames = (
        list(dataset.classes) if kind == LABELS and getattr(dataset, "classes", None) else None
    )
    if kind == LABELS and not classnames:
        raise ValueError(f"clip_benchmark dataset {cb_name!r} at {root} has no class names")
    templates = getattr(dataset, "templates", None) if kind == LABELS else None
    is_iterable = isinstance(dataset, IterableDataset) or not hasattr(dataset, "__len__")

    def make(transform):
        slot.fn = transform
        return Counted(dataset) if is_iterable else Indexed(dataset)

    return Source(
        slug=slug(short),
        kind=kind,
        where=f"clip_benchmark dataset {cb_name} ({split}) at {root}",
        make=make,
        classnames=classnames,
        templates=templates or None,
        size=None if is_iterable else len(dataset),
        info={"clip_benchmark": cb_name, "split": split},
    )


class BraceTemplate:
    """A clip_benchmark template (``"a photo of a {c}."``) as a callable of the class name."""

    def __init__(self, template: str):
        self.template = template

    def __call__(self, name: str) -> str:
        return self.template.replace("{c}", name)

    def __repr__(self) -> str:
        return repr(self.template)


def load_for_clip_benchmark(
    model_name: str, pretrained: str, cache_dir: str | None = None, device="cpu"
):
    """clip_benchmark's loader signature: ``(model, transform, tokenizer)``.

    ``pretrained`` is a checkpoint file (ours, with plugin modules skipped, or a plain
    open_clip one) or an open_clip pretrained tag.
    """
    from alignclip_plugins.evaluation.checkpoint import load_model

    is_file = Path(pretrained).is_file()
    loaded = load_model(
        model_name or None,
        checkpoint=pretrained if is_file else None,
        pretrained=None if is_file else pretrained,
        device=device,
        cache_dir=cache_dir,
    )
    return loaded.model, loaded.preprocess, loaded.tokenizer


def _accuracy(output, target, topk=(1,)) -> list[float]:
    """clip_benchmark's ``zeroshot_classification.accuracy`` (top-k of its logits), with the
    count taken by ``.item()``: its ``float()`` of a 1-element array fails on numpy >= 2.4."""
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    return [correct[:k].reshape(-1).float().sum().item() / len(target) for k in topk]


def register() -> None:
    """Make :func:`load_for_clip_benchmark` clip_benchmark's model type ``alignclip``.

    Also mends clip_benchmark 1.6's classification accuracy under numpy >= 2.4 (see
    :func:`_accuracy`) when that bug is present.
    """
    require_clip_benchmark()
    import clip_benchmark.models as models
    import torch
    from clip_benchmark.metrics import zeroshot_classification

    models.TYPE2FUNC[MODEL_TYPE] = load_for_clip_benchmark
    if MODEL_TYPE not in models.MODEL_TYPES:
        models.MODEL_TYPES.append(MODEL_TYPE)  # the same list object cli's choices use
    try:
        zeroshot_classification.accuracy(torch.eye(2), torch.tensor([0, 1]), topk=(1,))
    except TypeError:
        zeroshot_classification.accuracy = _accuracy


def main(argv: list[str] | None = None) -> int:
    """clip_benchmark's command line with model type ``alignclip`` available."""
    register()
    from clip_benchmark import cli

    sys.argv = ["clip_benchmark", *(sys.argv[1:] if argv is None else argv)]
    return int(cli.main() or 0)


if __name__ == "__main__":
    sys.exit(main())
