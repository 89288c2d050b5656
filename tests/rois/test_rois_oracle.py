"""The embedded dataset's oracle detector: a fixed function of the box's pixels and the box."""

import json
import tarfile

import numpy as np
import pytest

from alignclip_plugins.rois import oracle as O
from alignclip_plugins.rois.check import check_sidecars
from alignclip_plugins.rois.cli import main as rois_main
from alignclip_plugins.rois.storage import ROI_DIM, SidecarReader
from alignclip_plugins.synthetic import split_urls
from alignclip_plugins.synthetic.classes import class_index
from alignclip_plugins.synthetic.scene import render


def test_vectors_are_fixed_2052d_and_encode_colour_and_shape():
    rng = np.random.default_rng(0)
    red, blue = class_index("red circle"), class_index("blue star")
    box = (4, 6, 40, 42)
    vec = {}
    for name, cls in (("red", red), ("blue", blue)):
        vec[name] = [O.roi_vector(np.asarray(render([cls], [box], 64, rng)), box) for _ in range(3)]
    v = vec["red"][0]
    assert v.shape == (ROI_DIM,) and v.dtype == np.float32 and (v[:2048] >= 0).all()
    np.testing.assert_allclose(v[2048:], [4 / 64, 6 / 64, 40 / 64, 42 / 64])

    def cos(a, b):
        a, b = a[:2048], b[:2048]
        return float(a @ b / np.linalg.norm(a) / np.linalg.norm(b))

    same = np.mean([cos(vec["red"][0], vec["red"][i]) for i in (1, 2)])
    other = np.mean([cos(vec["red"][i], vec["blue"][i]) for i in range(3)])
    assert same > 0.95 and other < same - 0.1
    w, b = O.projection()
    assert w.shape == (2048, O.NUM_STATISTICS) and O.projection()[0] is w


def _expected_vector(crop_statistics: np.ndarray, coords) -> np.ndarray:
    """The oracle's documented function, computed here from its definition: a Gaussian W
    (2048 x 74, std 1/sqrt(74)) and b (std 0.1) drawn from default_rng(0x524F4931)."""
    rng = np.random.default_rng(0x524F4931)
    w = rng.normal(0.0, 1.0 / np.sqrt(74), size=(2048, 74)).astype(np.float32)
    b = rng.normal(0.0, 0.1, size=2048).astype(np.float32)
    appearance = np.maximum(w @ crop_statistics.astype(np.float32) + b, 0.0)
    return np.concatenate([appearance, np.asarray(coords, dtype=np.float32)])


def test_vector_equals_an_independently_computed_expectation():
    # a red square (200, 10, 10) on a grey (30) background, aligned to the 8 x 8 grid
    image = np.full((64, 64, 3), 30, dtype=np.uint8)
    image[20:44, 20:44] = (200, 10, 10)
    box = (8, 8, 56, 56)  # a 48 x 48 crop: the square covers its grid cells 2..5
    cells = np.array([0, 0, 1, 1, 1, 1, 0, 0], dtype=np.float32)
    expected_stats = np.concatenate(
        [
            [24 * 24 / 48**2],  # foreground fraction
            np.array([200, 10, 10]) / 255,  # mean foreground colour
            [0, 0, 0],  # its standard deviation (one colour)
            np.array([30, 30, 30]) / 255,  # mean background colour
            np.outer(cells, cells).reshape(-1),  # the silhouette on the 8 x 8 grid
        ]
    )
    stats = O.statistics(image[8:56, 8:56])
    assert stats.shape == (O.NUM_STATISTICS,) == (74,)
    np.testing.assert_allclose(stats, expected_stats, atol=1e-6)
    np.testing.assert_allclose(
        O.roi_vector(image, box),
        _expected_vector(expected_stats, [8 / 64, 8 / 64, 56 / 64, 56 / 64]),
        rtol=1e-5,
        atol=1e-6,
    )
    # a box reaching past the image is clipped to it (at least 2 pixels wide and high)
    clipped = O.roi_vector(image, (-5.4, 50.2, 70, 64))
    np.testing.assert_allclose(
        clipped,
        _expected_vector(O.statistics(image[50:64, 0:64]), [0, 50 / 64, 1, 1]),
        rtol=1e-5,
        atol=1e-6,
    )


def test_oracle_command_writes_every_shard_once_with_the_json_tags(synth_data, tmp_path):
    out = tmp_path / "rois"
    assert rois_main(["oracle", str(synth_data), "--out", str(out), "--no-progress"]) == 0
    urls = split_urls(synth_data, "train") + split_urls(synth_data, "retrieval")
    check_sidecars(out, urls)
    with tarfile.open(urls[0]) as tar:
        member = next(m for m in tar.getmembers() if m.name.endswith(".json"))
        truth = json.loads(tar.extractfile(member).read())
    key = member.name.split(".")[0]
    rois = SidecarReader(out / "train-000000.rois").get(key)
    assert rois.tags == truth["tags"] and len(rois.features) == len(truth["boxes"])
    size = truth["image_size"][0]
    np.testing.assert_allclose(
        rois.features[:, 2048:], np.asarray(truth["boxes"]) / size, atol=1e-3
    )
    stamp = (out / "train-000000.rois" / "meta.json").stat().st_mtime_ns
    assert O.write_oracle_rois(synth_data, out=out, progress=False) == {
        "written": 0,
        "skipped": len(urls),
    }
    assert (out / "train-000000.rois" / "meta.json").stat().st_mtime_ns == stamp
    with pytest.raises(ValueError, match="no split"):
        O.write_oracle_rois(synth_data, out=out, splits=["nope"], progress=False)
