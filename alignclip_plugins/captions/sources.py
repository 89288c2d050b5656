"""The caption annotation files of captioned image folders, and split lists.

Formats read (detected from the first line):

- **CSV with an ``image,caption`` header**: Kaggle's Flickr8k ``captions.txt``
  (``1000268201_693b08cb0e.jpg,A child in a pink dress ...``) and clip_benchmark's
  ``flickr8k_<split>_karpathy.txt`` / ``flickr30k_<split>_karpathy.txt``; a caption may
  contain commas (quoted or not);
- **Flickr8k.token.txt**: ``IMAGE.jpg#N<TAB>caption`` (the original distribution);
- **pipe-separated with an ``image_name|...|comment`` header**: Kaggle's Flickr30k
  ``results.csv``.

A split list is a file naming one image a line (``Flickr_8k.trainImages.txt``) or any of the
annotation formats above (its images are the list, e.g. clip_benchmark's karpathy files).
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path

FORMATS = ("csv", "token", "pipe")


@dataclass
class Annotations:
    """Captions by image file name (relative to the images folder), in file order."""

    path: Path
    format: str
    captions: dict[str, list[str]] = field(default_factory=dict)
    empty_captions: int = 0  # caption fields with no text
    bad_lines: list[str] = field(default_factory=list)  # "FILE:LINE: why" (unparseable)

    @property
    def num_captions(self) -> int:
        return sum(map(len, self.captions.values()))


def detect_format(first_line: str) -> str:
    """``csv``, ``token`` or ``pipe`` from a file's first line."""
    head = first_line.strip().lower().replace(" ", "")
    if head.startswith("image,caption") or head == "image,caption":
        return "csv"
    if head.startswith("image_name|"):
        return "pipe"
    name, tab, _ = first_line.partition("\t")
    if tab and "#" in name:
        return "token"
    raise ValueError(
        f"unknown caption file format (first line {first_line.strip()[:80]!r}); expected a CSV "
        "with an 'image,caption' header (Kaggle captions.txt, clip_benchmark *_karpathy.txt), "
        "Flickr8k.token.txt lines 'IMAGE.jpg#N<TAB>caption', or an 'image_name|...|comment' "
        "header (Kaggle Flickr30k results.csv)"
    )


def _image_name(name: str) -> str:
    return name.strip().replace("\\", "/").split("/")[-1] if "/" in name else name.strip()


def read_annotations(path: str | os.PathLike) -> Annotations:
    """Every image's captions from one annotation file (see the module doc)."""
    path = Path(path)
    with open(path, encoding="utf-8-sig", newline="") as f:
        first = f.readline()
        if not first.strip():
            raise ValueError(f"{path} is empty: no captions")
        kind = detect_format(first)
        out = Annotations(path, kind)
        if kind == "token":
            f.seek(0)
        rows = csv.reader(f) if kind == "csv" else f
        for number, row in enumerate(rows, start=1 if kind == "token" else 2):
            if kind == "csv":
                if not row or not "".join(row).strip():
                    continue
                image, caption = row[0], ",".join(row[1:])
            elif kind == "token":
                if not row.strip():
                    continue
                name, tab, caption = row.rstrip("\r\n").partition("\t")
                image = name.rsplit("#", 1)[0]
                if not tab:
                    out.bad_lines.append(f"{path}:{number}: no tab between image#N and caption")
                    continue
            else:
                if not row.strip():
                    continue
                parts = row.rstrip("\r\n").split("|")
                if len(parts) < 3:
                    out.bad_lines.append(f"{path}:{number}: expected image_name|number|comment")
                    continue
                image, caption = parts[0], "|".join(parts[2:])
            image, caption = _image_name(image), " ".join(caption.split())
            if not image:
                out.bad_lines.append(f"{path}:{number}: no image name")
                continue
            captions = out.captions.setdefault(image, [])
            if caption:
                captions.append(caption)
            else:
                out.empty_captions += 1
    return out


def read_split_list(path: str | os.PathLike) -> list[str]:
    """The image names of a split list (one a line, or an annotation file), each once."""
    path = Path(path)
    with open(path, encoding="utf-8-sig") as f:
        first = f.readline()
    try:
        detect_format(first)
    except ValueError:
        names = []
        for line in Path(path).read_text(encoding="utf-8-sig").splitlines():
            name = line.strip().split("\t")[0].split("#")[0]
            if name:
                names.append(_image_name(name))
        return list(dict.fromkeys(names))
    return list(read_annotations(path).captions)
