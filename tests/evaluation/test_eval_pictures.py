"""The qualitative pictures: text-to-image retrieval grids and Grad-CAM word heatmaps."""

import numpy as np
import pytest
import torch
from PIL import Image

from alignclip_plugins.evaluation.gradcam import (
    Layer,
    content_words,
    grad_cam,
    remove_word,
    word_heatmap,
)
from alignclip_plugins.evaluation.results import read_result


def test_retrieval_grid_end_to_end(
    synth_data, tiny_run, plain_checkpoint, tiny_model, tmp_path, run_eval
):
    code, out, err = run_eval(
        "retrieval-grid", "--checkpoint", tiny_run, plain_checkpoint, "--model", tiny_model,
        "--data", synth_data / "retrieval", "--workers", 0, "--num-queries", 2, "--top", 4,
        "--thumbnail", 32,
    )  # fmt: skip
    assert code == 0, err
    png = tiny_run.parent.parent / "evals" / "retrieval-grid-retrieval.png"
    with Image.open(png) as image:
        assert image.width > image.height > 100  # 4 rows (2 queries x 2 models) of 1 + 4 cells
    ours = read_result(png.with_suffix(".json"))
    plain = read_result(plain_checkpoint.parent / "weights.evals" / "retrieval-grid-retrieval.json")
    assert ours.artifacts == plain.artifacts == [str(png)]
    assert [q["query"] for q in ours.details["queries"]] == [
        q["query"] for q in plain.details["queries"]
    ]
    hits = [q["ground_truth"] in q["top"] for q in ours.details["queries"]]
    assert ours.metrics == {"query_hit@4": sum(hits) / 2} and "query_hit@4" in out
    for q in ours.details["queries"]:
        assert q["ground_truth"] is not None and len(q["top"]) == 4
        assert q["scores"] == sorted(q["scores"], reverse=True)

    code, _, err = run_eval(
        "retrieval-grid", "--checkpoint", tiny_run, "--data", synth_data / "retrieval",
        "--workers", 0,
        "--query", "a red circle", "--out", tmp_path / "o",
    )  # fmt: skip
    assert code == 0, err
    result = read_result(tmp_path / "o" / "retrieval-grid-retrieval.json")
    assert (
        result.details["queries"][0]["ground_truth"] is None
        and len(result.details["queries"][0]["top"]) == 10
    )


class _Toy(torch.nn.Module):
    """A 1x1 convolution that copies its two input channels; the score adds channel 0 and
    subtracts channel 1."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(2, 2, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(2)[:, :, None, None])

    def forward(self, x):
        a = self.conv(x)
        return a[:, 0].sum() - a[:, 1].sum()


def test_grad_cam_known_answer():
    toy = _Toy()
    x = torch.zeros(1, 2, 5, 7)
    x[0, 0, 2, 5] = 3.0  # channel 0 (positive weight) lights up here
    x[0, 0, 4, 1] = 1.5
    x[0, 1, 1, 1] = 9.0  # channel 1 (negative weight): never in the map
    cam, score = grad_cam(lambda: toy(x), Layer(toy.conv, lambda a: a[0], "conv"))
    assert score == pytest.approx(4.5 - 9.0)
    expected = np.zeros((5, 7))
    expected[2, 5], expected[4, 1] = 1.0, 0.5
    np.testing.assert_allclose(cam, expected, atol=1e-6)


@pytest.mark.parametrize("tower", ["vit", "resnet"])
def test_word_heatmaps_on_both_towers(tower, tiny_model, tiny_rn):
    import open_clip

    from alignclip_plugins.evaluation.gradcam import target_layer

    name = tiny_model if tower == "vit" else tiny_rn
    torch.manual_seed(0)
    model, _, preprocess = open_clip.create_model_and_transforms(name, load_weights=False)
    tokenizer = open_clip.get_tokenizer(name)
    layer = target_layer(model)
    assert layer.description.startswith(
        "visual.transformer.resblocks[3].ln_1" if tower == "vit" else "visual.layer4"
    )
    image = torch.randn(1, 3, 64, 64)
    cam, score = word_heatmap(model.eval(), tokenizer, image, "a cat on a mat", "cat", layer=layer)
    assert cam.shape == ((8, 8) if tower == "vit" else (2, 2))
    assert cam.min() >= 0 and cam.max() == pytest.approx(1.0) and -1 <= score <= 1
    cam2, score2 = word_heatmap(
        model, tokenizer, image, "a cat on a mat", "cat", target="context", layer=layer
    )
    assert cam2.shape == cam.shape and score2 != score
    with pytest.raises(ValueError, match="does not occur"):
        word_heatmap(
            model, tokenizer, image, "a cat on a mat", "dog", target="context", layer=layer
        )
    assert remove_word("A Cat and a cat-flap", "cat") == "A and a -flap"


def test_content_words_are_the_default_words():
    # stop words and words under three letters dropped, each word once, caption order kept
    assert content_words("The dog's ball and the Dog by a red-brick wall, the ball") == [
        "dog's",
        "ball",
        "Dog",
        "red-brick",
        "wall",
    ]
    assert content_words("a man in the sea") == ["man", "sea"]
    assert content_words("it is on a mat") == ["mat"]
    assert content_words("it is on") == []


def test_gradcam_end_to_end(tiny_run, tiny_model, tiny_rn, tmp_path, write_image, run_eval):
    import open_clip

    torch.manual_seed(0)
    rn = tmp_path / "rn.pt"
    torch.save(open_clip.create_model(tiny_rn, load_weights=False).state_dict(), rn)
    images = [write_image(tmp_path / f"im{i}.jpg", 200 + i, size=(80, 64)) for i in range(2)]
    code, out, err = run_eval(
        "gradcam", "--checkpoint", tiny_run, rn, "--model", tiny_model, tiny_rn,
        "--image", *images, "--caption", "two red cars and a boat", "a dog in the snow",
        "--word-template", "a photo of {}.", "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, err
    png = tmp_path / "out" / "gradcam.png"
    with Image.open(png) as image:
        assert image.height > 300  # 2 images x 2 models
    vit, rn = (
        read_result(tmp_path / "out" / "run_a_epoch_3" / "gradcam.json"),
        read_result(tmp_path / "out" / "rn" / "gradcam.json"),
    )
    assert vit.details["layer"].startswith("visual.transformer.resblocks[3].ln_1")
    result = rn
    assert result.details["layer"] == "visual.layer4 (before attention pooling)"
    assert [im["words"] for im in result.details["images"]] == [
        ["red", "cars", "boat"],
        ["dog", "snow"],
    ]
    assert "| run-a/epoch_3: im0.jpg |" in out and "| rn: im1.jpg |" in out
    code, _, err = run_eval(
        "gradcam", "--checkpoint", tiny_run, "--image", tmp_path / "nope.jpg", "--caption", "x"
    )
    assert code == 1 and "nope.jpg does not exist" in err
