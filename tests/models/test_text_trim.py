"""The trimmed text encode: equal to the full-length one, and its fallback."""

import open_clip
import pytest
import torch

from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.models.text_trim import can_trim, encode_text_trimmed, pad_to_context

TOWERS = ("ViT-Tiny-64", "RN-Tiny-64")


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: open_clip.create_model(model_arg(name)).double().eval() for name in TOWERS}


@pytest.mark.parametrize("tower", TOWERS)
def test_trimmed_text_encode_equals_the_full_length_encode(models, tower):
    model = models[tower]
    tokenizer = open_clip.get_tokenizer(model_arg(tower))
    texts = ["red circle, blue star, green heart", "yellow ring", ""]
    full = tokenizer(texts)
    longest = int((full != 0).sum(1).max())
    trimmed = full[:, :longest]
    assert can_trim(model) and trimmed.shape[1] < full.shape[1]
    with torch.no_grad():
        reference = model.encode_text(full, normalize=True)
        ours = encode_text_trimmed(model, trimmed, normalize=True)
    torch.testing.assert_close(ours, reference, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(pad_to_context(trimmed, full.shape[1]), full)
    with pytest.raises(ValueError, match="exceed the context length"):
        encode_text_trimmed(model, torch.ones(1, 99, dtype=torch.long))


def test_untrimmable_pooling_falls_back_to_the_full_encode(models):
    model = models["ViT-Tiny-64"]
    tokenizer = open_clip.get_tokenizer(model_arg("ViT-Tiny-64"))
    full = tokenizer(["red circle", "blue star, a"])
    model.text_pool_type = "last"
    try:
        assert not can_trim(model)
        with torch.no_grad():
            torch.testing.assert_close(
                encode_text_trimmed(model, full[:, :6]), model.encode_text(full)
            )
    finally:
        model.text_pool_type = "argmax"
