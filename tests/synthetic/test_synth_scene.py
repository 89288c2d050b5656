"""Scenes: object placement and rendering."""

import numpy as np
import pytest

from alignclip_plugins.synthetic.classes import RGB, class_parts
from alignclip_plugins.synthetic.scene import (
    COLOUR_JITTER,
    MIN_IMAGE_SIZE,
    MIN_OBJECT_PX,
    PIXEL_NOISE,
    encode_png,
    place_objects,
    render,
)

TOLERANCE = COLOUR_JITTER + PIXEL_NOISE + 4  # max per-channel distance of an object pixel


def object_mask(pixels: np.ndarray, colour: str) -> np.ndarray:
    """(H, W) bool: pixels within TOLERANCE of the base colour."""
    return np.abs(pixels.astype(int) - RGB[colour]).max(axis=2) <= TOLERANCE


def overlaps(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("size", [MIN_IMAGE_SIZE, 64, 97])
def test_boxes_are_inside_square_disjoint_and_large_enough(size):
    rng = np.random.default_rng(0)
    for _ in range(200):
        count = int(rng.integers(1, 5))
        boxes = place_objects(count, size, rng)
        assert len(boxes) == count
        for x1, y1, x2, y2 in boxes:
            assert 0 <= x1 < x2 <= size and 0 <= y1 < y2 <= size
            assert x2 - x1 == y2 - y1 >= MIN_OBJECT_PX
            assert all(isinstance(v, int) for v in (x1, y1, x2, y2))
        assert not any(overlaps(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_bad_counts_and_sizes_are_rejected():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="1 to 4 objects"):
        place_objects(5, 64, rng)
    with pytest.raises(ValueError, match="too small"):
        place_objects(1, MIN_IMAGE_SIZE - 1, rng)


def test_every_class_is_drawn_inside_its_box_and_nowhere_else():
    rng = np.random.default_rng(1)
    for class_id in range(48):
        count = 1 + class_id % 4
        ids = [class_id] + [int(c) for c in rng.integers(0, 48, size=count - 1)]
        boxes = place_objects(count, 64, rng)
        pixels = np.asarray(render(ids, boxes, 64, rng))
        assert pixels.shape == (64, 64, 3) and pixels.dtype == np.uint8
        outside = np.ones((64, 64), dtype=bool)
        for c, (x1, y1, x2, y2) in zip(ids, boxes):
            outside[y1:y2, x1:x2] = False
            inside = object_mask(pixels, class_parts(c)[0])[y1:y2, x1:x2]
            assert inside.mean() > 0.25, (class_id, c)
            # the object reaches (close to) every side of its box
            rows, cols = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            assert rows[0] <= 1 and cols[0] <= 1
            assert rows[-1] >= y2 - y1 - 2 and cols[-1] >= x2 - x1 - 2
        for colour in RGB:
            assert not object_mask(pixels, colour)[outside].any()


def test_background_is_textured_not_flat():
    rng = np.random.default_rng(2)
    pixels = np.asarray(render([0], [(0, 0, 10, 10)], 64, rng)).astype(int)
    background = pixels[16:, 16:]
    assert background.min() >= 150 and background.std() > 1.0


def test_rendering_is_deterministic_per_generator_state():
    def png(seed: int) -> bytes:
        rng = np.random.default_rng(seed)
        return encode_png(render([3, 12], place_objects(2, 64, rng), 64, rng))

    assert png(5) == png(5) and png(5) != png(6)
    assert png(5)[:8] == b"\x89PNG\r\n\x1a\n"
