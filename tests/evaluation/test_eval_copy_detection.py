"""``alignclip eval copy-detection`` on a Copydays-like folder written by the test."""

import numpy as np
import pytest
from PIL import Image

from alignclip_plugins.evaluation.results import read_result


def _attack(image: Image.Image) -> Image.Image:
    """A mild "strong" attack: a few pixels brightened."""
    a = np.asarray(image).astype(np.int16)
    a[10:14, 20:30] += 8
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _copydays(root, noise, write_image):
    """Originals 200000, 200100, 200200 and their attacked copies; the strong set names them
    as Copydays does, by group prefix (first 4 characters)."""
    originals = {f"2{g:03d}00": noise(50 + g) for g in range(3)}
    for name, image in originals.items():
        write_image(root / "original" / f"{name}.jpg", image)
        write_image(root / "strong" / f"{name[:4]}01.jpg", _attack(image))
    return originals


def test_strong_copies_match_their_originals(tiny_run, tmp_path, noise, write_image, run_eval):
    originals = _copydays(tmp_path / "copydays", noise, write_image)
    code, out, err = run_eval(
        "copy-detection", "--checkpoint", tiny_run, "--data", tmp_path / "copydays", "--workers", 0,
        "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    result = read_result(tiny_run.parent.parent / "evals" / "copy-detection-copydays_strong.json")
    assert result.metrics == {"mAP": pytest.approx(1.0)}
    assert (
        result.details["originals"],
        result.details["queries"],
        result.details["distractors"],
    ) == (3, 3, 0)
    assert "| mAP |" in out

    # a distractor identical to the first strong image outranks its original: that query's
    # AP is the trapezoid (0/1 + 1/2) / 2 = 0.25, the others stay 1
    distractors = tmp_path / "distractors"
    write_image(distractors / "d0.jpg", _attack(originals["200000"]))
    for i in range(3):
        write_image(distractors / f"d{i + 1}.jpg", 90 + i)
    code, _, err = run_eval(
        "copy-detection", "--checkpoint", tiny_run, "--data", tmp_path / "copydays",
        "--distractors", distractors, "--workers", 0, "--out", tmp_path / "o",
        "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    result = read_result(tmp_path / "o" / "copy-detection-copydays_strong.json")
    assert result.details["distractors"] == 4
    assert result.metrics["mAP"] == pytest.approx((0.25 + 1 + 1) / 3)


def test_layout_errors(tiny_run, tmp_path, noise, write_image, run_eval):
    ckpt = ["--checkpoint", tiny_run, "--workers", 0]
    write_image(tmp_path / "cd" / "original" / "200000.jpg", 1)
    code, _, err = run_eval("copy-detection", *ckpt, "--data", tmp_path / "cd")
    assert code == 1 and "strong" in err and "copydays_strong" in err
    write_image(tmp_path / "cd" / "strong" / "210001.jpg", 2)
    code, _, err = run_eval("copy-detection", *ckpt, "--data", tmp_path / "cd")
    assert code == 1 and "match no original" in err and "210001.jpg" in err
