"""Webdataset records: a sample plan rendered into its tar members (KEY.png, KEY.txt, ...)."""

from __future__ import annotations

import json

import numpy as np

from alignclip_plugins.synthetic.classes import CLASS_NAMES
from alignclip_plugins.synthetic.plan import SamplePlan
from alignclip_plugins.synthetic.scene import encode_png, render
from alignclip_plugins.synthetic.writer import Member


def _json(value: dict) -> bytes:
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def ground_truth(plan: SamplePlan, image_size: int, tail: np.ndarray) -> dict:
    """The KEY.json content of a sample; ``tail`` (48,) bool is used by zero-shot samples."""
    names = [CLASS_NAMES[c] for c in plan.class_ids]
    boxes = [list(b) for b in plan.boxes]
    if plan.label is not None:
        return {
            "class": CLASS_NAMES[plan.label],
            "label": plan.label,
            "tail": bool(tail[plan.label]),
            "objects": names,
            "boxes": boxes,
            "tags": list(names),
            "image_size": [image_size, image_size],
        }
    assert plan.caption is not None
    return {
        "objects": names,
        "boxes": boxes,
        "tags": list(names),
        "matched": plan.matched,
        "caption_objects": list(plan.caption.objects),
        "caption_shape_only": list(plan.caption.shape_only),
        "duplicate_of": plan.duplicate_of,
        "image_size": [image_size, image_size],
    }


def sample_members(
    plan: SamplePlan, image_size: int, tail: np.ndarray, rng: np.random.Generator
) -> list[Member]:
    """Tar members of one sample: KEY.png, then KEY.txt or KEY.cls, then KEY.json."""
    image = render(plan.class_ids, plan.boxes, image_size, rng)
    members = [(f"{plan.key}.png", encode_png(image))]
    if plan.label is not None:
        members.append((f"{plan.key}.cls", str(plan.label).encode("ascii")))
    else:
        assert plan.caption is not None
        members.append((f"{plan.key}.txt", plan.caption.text.encode("utf-8")))
    members.append((f"{plan.key}.json", _json(ground_truth(plan, image_size, tail))))
    return members
