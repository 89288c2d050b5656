"""Object placement and rendering: 1-4 coloured shapes on a lightly textured background.

Boxes are ``(x1, y1, x2, y2)`` in pixels with exclusive ``x2, y2``: the object's pixels lie in
columns ``x1 .. x2 - 1`` and rows ``y1 .. y2 - 1``; each box is its object's square bounding box.
Objects never overlap: each one gets its own cell of the image (whole image, halves or a 2x2
grid) and its box lies inside that cell.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

from alignclip_plugins.synthetic.classes import RGB, class_parts

Box = tuple[int, int, int, int]

MAX_OBJECTS = 4
MIN_OBJECT_PX = 10  # smallest side at which a star or a heart is still recognisable
MARGIN_PX = 1  # free pixels between an object and its cell's border
# Four objects share a 2x2 grid, so each half of the image must hold one object plus margins.
MIN_IMAGE_SIZE = 2 * (MIN_OBJECT_PX + 2 * MARGIN_PX)
MAX_IMAGE_SIZE = 1024

COLOUR_JITTER = 18  # max per-channel deviation of an object's fill from its base colour
PIXEL_NOISE = 3  # max per-pixel noise added over the whole image


def _unit(points: Sequence[tuple[float, float]]) -> np.ndarray:
    """(N, 2) polygon rescaled so that it spans exactly [0, 1] x [0, 1]."""
    pts = np.asarray(points, dtype=np.float64)
    pts -= pts.min(axis=0)
    return pts / pts.max(axis=0)


def _star() -> np.ndarray:
    angles = -math.pi / 2 + np.arange(10) * math.pi / 5
    radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.45)
    return _unit(list(zip(radii * np.cos(angles), radii * np.sin(angles))))


def _heart() -> np.ndarray:
    t = np.linspace(0.0, 2 * math.pi, 48, endpoint=False)
    x = 16 * np.sin(t) ** 3
    y = -(13 * np.cos(t) - 5 * np.cos(2 * t) - 2 * np.cos(3 * t) - np.cos(4 * t))
    return _unit(list(zip(x, y)))


def _cross() -> np.ndarray:
    a, b = 1 / 3, 2 / 3
    return _unit(
        [
            (a, 0),
            (b, 0),
            (b, a),
            (1, a),
            (1, b),
            (b, b),
            (b, 1),
            (a, 1),
            (a, b),
            (0, b),
            (0, a),
            (a, a),
        ]
    )


# Filled unit polygons; "circle" and "ring" are drawn as ellipses instead.
POLYGONS: dict[str, np.ndarray] = {
    "square": _unit([(0, 0), (1, 0), (1, 1), (0, 1)]),
    "triangle": _unit([(0.5, 0), (1, 1), (0, 1)]),
    "star": _star(),
    "cross": _cross(),
    "diamond": _unit([(0.5, 0), (1, 0.5), (0.5, 1), (0, 0.5)]),
    "heart": _heart(),
}


def _cells(count: int, size: int, rng: np.random.Generator) -> list[tuple[int, int, int, int]]:
    """``count`` disjoint cells (x, y, width, height) of a ``size`` x ``size`` image."""
    half = size // 2
    if count == 1:
        return [(0, 0, size, size)]
    if count == 2:
        if rng.random() < 0.5:
            cells = [(0, 0, half, size), (half, 0, size - half, size)]
        else:
            cells = [(0, 0, size, half), (0, half, size, size - half)]
        return [cells[i] for i in rng.permutation(2)]
    grid = [
        (0, 0, half, half),
        (half, 0, size - half, half),
        (0, half, half, size - half),
        (half, half, size - half, size - half),
    ]
    return [grid[i] for i in rng.permutation(4)[:count]]


def place_objects(count: int, image_size: int, rng: np.random.Generator) -> list[Box]:
    """``count`` (1-4) non-overlapping square boxes in a square image of ``image_size`` px."""
    if not 1 <= count <= MAX_OBJECTS:
        raise ValueError(f"an image holds 1 to {MAX_OBJECTS} objects, not {count}")
    if image_size < MIN_IMAGE_SIZE:
        raise ValueError(
            f"image size {image_size} px is too small: {MAX_OBJECTS} objects of at "
            f"least {MIN_OBJECT_PX} px need {MIN_IMAGE_SIZE} px"
        )
    boxes = []
    for x, y, w, h in _cells(count, image_size, rng):
        room = min(w, h) - 2 * MARGIN_PX
        low = min(room, max(MIN_OBJECT_PX, int(0.45 * min(w, h))))
        high = min(room, max(low, int(0.9 * min(w, h))))
        side = int(rng.integers(low, high + 1))
        x1 = x + MARGIN_PX + int(rng.integers(0, w - 2 * MARGIN_PX - side + 1))
        y1 = y + MARGIN_PX + int(rng.integers(0, h - 2 * MARGIN_PX - side + 1))
        boxes.append((x1, y1, x1 + side, y1 + side))
    return boxes


def _background(size: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size, 3) int16: a light, slightly tinted tone with smooth blotches."""
    tone = rng.integers(180, 226) + rng.integers(-10, 11, size=3)
    blotches = rng.integers(0, 31, size=(4, 4), dtype=np.uint8)
    smooth = Image.fromarray(blotches).resize((size, size), Image.Resampling.BILINEAR)
    return tone[None, None, :] + (np.asarray(smooth, dtype=np.int16)[:, :, None] - 15)


def _draw(draw: ImageDraw.ImageDraw, shape: str, box: Box, fill: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    inclusive = (x1, y1, x2 - 1, y2 - 1)  # PIL's shape boxes include their far edge
    if shape == "circle":
        draw.ellipse(inclusive, fill=fill)
    elif shape == "ring":
        draw.ellipse(inclusive, outline=fill, width=max(2, (x2 - x1) // 4))
    else:
        pts = POLYGONS[shape] * (x2 - x1 - 1) + (x1, y1)
        draw.polygon([tuple(p) for p in pts.tolist()], fill=fill)


def render(
    class_ids: Sequence[int], boxes: Sequence[Box], image_size: int, rng: np.random.Generator
) -> Image.Image:
    """An RGB ``image_size`` x ``image_size`` image with object ``class_ids[i]`` in ``boxes[i]``."""
    canvas = Image.fromarray(np.clip(_background(image_size, rng), 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for class_id, box in zip(class_ids, boxes, strict=True):
        colour, shape = class_parts(class_id)
        jitter = rng.integers(-COLOUR_JITTER, COLOUR_JITTER + 1, size=3)
        fill = tuple(int(v) for v in np.clip(np.add(RGB[colour], jitter), 0, 255))
        _draw(draw, shape, box, fill)
    noise = rng.integers(-PIXEL_NOISE, PIXEL_NOISE + 1, size=(image_size, image_size, 3))
    pixels = np.clip(np.asarray(canvas, dtype=np.int16) + noise, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def encode_png(image: Image.Image) -> bytes:
    """PNG bytes of ``image`` (deterministic for identical pixels)."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()
