"""``alignclip eval instance-retrieval`` on a revisited-Oxford-like dataset written by the test:
``gnd_roxford5k.pkl`` + ``jpg/``, query crops that select one half of a two-image query."""

import pickle

import numpy as np
import pytest
from PIL import Image

from alignclip_plugins.evaluation.results import read_result


def _nudge(image: Image.Image, seed: int) -> Image.Image:
    """A near-copy: a few pixels changed by a few levels."""
    a = np.asarray(image).astype(np.int16)
    rng = np.random.default_rng(seed)
    a[rng.integers(0, 64, 20), rng.integers(0, 64, 20)] += 6
    return Image.fromarray(a.clip(0, 255).astype(np.uint8))


def _roxford(root, noise, write_image):
    """Database: A, A', A'' (near-copies), B, B', B'', and 4 unrelated images. Two queries,
    both the image [A | B]: query 0 crops A, query 1 crops B. Query 0: easy A, hard A',
    junk A''; query 1: easy B, hard B', junk B''. Perfect crops give mAP 1 everywhere."""
    a, b = noise(1), noise(2)
    db = {
        "a": a,
        "a1": _nudge(a, 1),
        "a2": _nudge(a, 2),
        "b": b,
        "b1": _nudge(b, 1),
        "b2": _nudge(b, 2),
    }
    db.update({f"x{i}": noise(10 + i) for i in range(4)})
    for name, image in db.items():
        write_image(root / "jpg" / f"{name}.jpg", image)
    both = Image.new("RGB", (128, 64))
    both.paste(a, (0, 0))
    both.paste(b, (64, 0))
    write_image(root / "jpg" / "q_ab.jpg", both)
    imlist = list(db)
    at = imlist.index
    gnd = [
        {"bbx": [0.2, 0.0, 64.4, 64.0], "easy": [at("a")], "hard": [at("a1")], "junk": [at("a2")]},
        {"bbx": [64, 0, 128, 64], "easy": [at("b")], "hard": [at("b1")], "junk": [at("b2")]},
    ]
    with open(root / "gnd_roxford5k.pkl", "wb") as f:
        pickle.dump({"imlist": imlist, "qimlist": ["q_ab", "q_ab"], "gnd": gnd}, f)
    return root


def test_crops_and_protocols_end_to_end(tiny_run, tmp_path, noise, write_image, run_eval):
    root = _roxford(tmp_path / "roxford5k", noise, write_image)
    code, out, err = run_eval(
        "instance-retrieval",
        "--checkpoint",
        tiny_run,
        "--data",
        root,
        "--workers",
        0,
        "--precision",
        "fp32",
    )
    assert code == 0, err
    result = read_result(tiny_run.parent.parent / "evals" / "instance-retrieval-roxford5k.json")
    assert result.dataset == "roxford5k" and result.details == {"queries": 2, "database": 10}
    for protocol in ("easy", "medium", "hard"):
        assert result.metrics[f"{protocol}_mAP"] == pytest.approx(1.0), protocol
    assert result.metrics["medium_mP@1"] == 1.0
    assert "hard_mAP" in out
    # the directory above works too, with the dataset named
    code, _, err = run_eval(
        "instance-retrieval", "--checkpoint", tiny_run, "--data", tmp_path,
        "--dataset", "roxford5k",
        "--workers", 0, "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, err


def test_malformed_ground_truth_and_missing_images(
    tiny_run, tmp_path, noise, write_image, run_eval
):
    ckpt = ["--checkpoint", tiny_run, "--workers", 0]
    code, _, err = run_eval("instance-retrieval", *ckpt, "--data", tmp_path)
    assert code == 1 and "gnd_*.pkl" in err and "jpg/<name>.jpg" in err
    root = _roxford(tmp_path / "rparis6k", noise, write_image)
    gnd_file = root / "gnd_roxford5k.pkl"

    def broken(change) -> str:
        bad = pickle.loads(gnd_file.read_bytes())
        change(bad)
        path = root / "gnd_rparis6k.pkl"
        path.write_bytes(pickle.dumps(bad))
        code, _, err = run_eval("instance-retrieval", *ckpt, "--data", path)
        assert code == 1
        return err

    assert "expected a dict with 'imlist'" in broken(lambda c: c.pop("gnd"))
    assert "index 99 outside imlist" in broken(lambda c: c["gnd"][1].update(junk=[99]))
    assert "gnd[0]['bbx'] must be [x1, y1, x2, y2]" in broken(
        lambda c: c["gnd"][0].update(bbx=[5, 5, 1, 1])
    )
    assert "2 'gnd' entries for 3 queries" in broken(lambda c: c["qimlist"].append("q_ab"))
    (root / "jpg" / "x3.jpg").unlink()
    assert "1 of 10 images do not exist" in broken(lambda c: None)
