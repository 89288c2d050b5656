"""Smoke-scale stand-ins for the image-retrieval benchmarks, made from the embedded data.

Revisited Oxford / Paris and Copydays cannot ship with the project; to run Tables 3 and 4
end to end offline, these functions write small datasets in exactly those benchmarks'
on-disk layouts from the synthetic zero-shot split (coloured shapes, one class each):

* :func:`revisited_standin`: ``gnd_<name>.pkl`` (revisitop format) and ``jpg/<name>.jpg``;
  one query image per class, its database positives are the other images of the class
  (alternately "easy" and "hard"), no junk; the query box is the whole image.
* :func:`copydays_standin`: ``original/NNNN00.jpg`` and ``strong/NNNN01.jpg``, each strong
  copy a heavily cropped, rotated, blurred, re-coloured and re-compressed original.

Numbers measured on them check the plumbing only.
"""

from __future__ import annotations

import io
import os
import pickle
import random
from collections.abc import Iterator
from pathlib import Path

from PIL import Image, ImageFilter, ImageOps

from alignclip_plugins.io.shards import iter_samples

DONE = ".complete"


def _zeroshot_images(data: Path) -> Iterator[tuple[str, int, Image.Image]]:
    """``(key, class index, image)`` of the synthetic zero-shot split, in shard order."""
    from alignclip_plugins.synthetic import split_urls

    for url in split_urls(data, "zeroshot"):
        members = dict(iter_samples(url, ("png", "cls")))
        for key in sorted(members):
            sample = members[key]
            if "png" in sample and "cls" in sample:
                image = Image.open(io.BytesIO(sample["png"])).convert("RGB")
                yield key, int(sample["cls"].decode().strip()), image


def _finish(out: Path) -> None:
    (out / DONE).write_text("ok\n")


def revisited_standin(data: str | os.PathLike, out: str | os.PathLike, name: str) -> Path:
    """Write a revisited-Oxford-format stand-in named ``name`` into ``out``; returns ``out``."""
    data, out = Path(data), Path(out)
    if (out / DONE).exists():
        return out
    by_class: dict[int, list[tuple[str, Image.Image]]] = {}
    for key, cls, image in _zeroshot_images(data):
        by_class.setdefault(cls, []).append((key, image))
    (out / "jpg").mkdir(parents=True, exist_ok=True)
    queries, database = [], []
    for cls in sorted(by_class):
        items = by_class[cls]
        if len(items) < 2:
            continue
        queries.append((cls, *items[0]))
        database += [(cls, key, image) for key, image in items[1:]]
    for _, key, image in queries + database:
        image.save(out / "jpg" / f"{key}.jpg", quality=95)
    imlist = [key for _, key, _ in database]
    gnd = []
    for cls, _, image in queries:
        positives = [i for i, (c, _, _) in enumerate(database) if c == cls]
        gnd.append(
            {
                "bbx": [0, 0, image.width, image.height],
                "easy": positives[0::2],
                "hard": positives[1::2],
                "junk": [],
            }
        )
    ground_truth = {"imlist": imlist, "qimlist": [key for _, key, _ in queries], "gnd": gnd}
    with open(out / f"gnd_{name}.pkl", "wb") as f:
        pickle.dump(ground_truth, f)
    _finish(out)
    return out


def _attack(image: Image.Image, rng: random.Random) -> Image.Image:
    """A strong Copydays-like distortion of ``image``."""
    w, h = image.size
    keep = rng.uniform(0.6, 0.8)
    cw, ch = int(w * keep), int(h * keep)
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    out = image.crop((x, y, x + cw, y + ch)).resize((w, h))
    out = out.rotate(rng.uniform(-20, 20), fillcolor=(128, 128, 128))
    out = out.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 1.5)))
    out = ImageOps.autocontrast(ImageOps.posterize(out, 4))
    buf = io.BytesIO()
    out.save(buf, format="JPEG", quality=15)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def copydays_standin(data: str | os.PathLike, out: str | os.PathLike, count: int = 48) -> Path:
    """Write a Copydays-format stand-in (``count`` originals, one strong copy each)."""
    data, out = Path(data), Path(out)
    if (out / DONE).exists():
        return out
    rng = random.Random(0)
    (out / "original").mkdir(parents=True, exist_ok=True)
    (out / "strong").mkdir(parents=True, exist_ok=True)
    for i, (_, _, image) in enumerate(_zeroshot_images(data)):
        if i >= count:
            break
        image.save(out / "original" / f"{i:04d}00.jpg", quality=95)
        _attack(image, rng).save(out / "strong" / f"{i:04d}01.jpg", quality=95)
    _finish(out)
    return out


def kaggle_captions_standin(
    out: str | os.PathLike,
    images: int = 96,
    captions_per_image: int = 5,
    image_size: int = 80,
    seed: int = 0,
) -> Path:
    """A captioned image folder in Kaggle's Flickr8k layout, rendered by the synthetic
    generator: ``Images/NNNNNNN_xxxx.jpg``, ``captions.txt`` (``image,caption`` CSV, each image
    with ``captions_per_image`` captions: one clean, the others alt-text-like) and
    ``nouns.txt`` (the class names, one a line). The recipe smoke converts it to shards."""
    import csv

    import numpy as np

    from alignclip_plugins.synthetic.captions import clean_caption, noisy_caption
    from alignclip_plugins.synthetic.classes import CLASS_NAMES
    from alignclip_plugins.synthetic.scene import place_objects, render

    out = Path(out)
    if (out / DONE).exists():
        return out
    (out / "Images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(images):
        count = int(rng.integers(1, 4))
        class_ids = [int(c) for c in rng.integers(0, len(CLASS_NAMES), size=count)]
        boxes = place_objects(count, image_size, rng)
        name = f"{1000000 + i}_{int(rng.integers(16**4)):04x}.jpg"
        render(class_ids, boxes, image_size, rng).save(out / "Images" / name, quality=90)
        captions = [clean_caption(class_ids, rng).text]
        captions += [noisy_caption(class_ids, rng).text for _ in range(captions_per_image - 1)]
        rows += [(name, caption) for caption in captions]
    with open(out / "captions.txt", "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["image", "caption"])
        writer.writerows(rows)
    (out / "nouns.txt").write_text("\n".join(CLASS_NAMES) + "\n", encoding="utf-8")
    _finish(out)
    return out
