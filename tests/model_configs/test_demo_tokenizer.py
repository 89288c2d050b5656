"""The demo model's small tokenizer: shipped as built, every demo word one token, open_clip's
contract (end-of-text the highest id, padding 0) kept."""

import json

import numpy as np
import open_clip
import pytest
import torch

from alignclip_plugins.model_configs import DEMO, demo_tokenizer, model_arg, model_dir
from alignclip_plugins.synthetic.captions import clean_caption, noisy_caption


@pytest.fixture(scope="module")
def tokenizer():
    return open_clip.get_tokenizer(model_arg(DEMO))


def test_the_shipped_files_are_what_the_builder_writes(tmp_path):
    size = demo_tokenizer.write(tmp_path)
    for name in demo_tokenizer.FILES:
        shipped = json.loads((model_dir(DEMO) / name).read_text(encoding="utf-8"))
        assert shipped == json.loads((tmp_path / name).read_text(encoding="utf-8")), (
            f"{name} is stale: rebuild it with python -m alignclip_plugins.model_configs.demo_tokenizer"
        )
    config = json.loads((model_dir(DEMO) / "open_clip_config.json").read_text())
    assert config["model_cfg"]["text_cfg"]["vocab_size"] == size


def test_every_demo_word_is_one_token_and_nothing_is_unknown(tokenizer):
    rng = np.random.default_rng(0)
    captions = [noisy_caption(rng.integers(0, 48, 3), rng, colour_mention=0.5) for _ in range(500)]
    captions += [clean_caption(rng.integers(0, 48, 2), rng) for _ in range(50)]
    texts = [c.text for c in captions] + demo_tokenizer.demo_texts()
    ids = tokenizer(texts, context_length=77)
    assert not (ids == demo_tokenizer.vocabulary()[demo_tokenizer.UNK]).any()
    hf = tokenizer.tokenizer
    for word in demo_tokenizer.demo_words():
        assert len(hf(word, add_special_tokens=False).input_ids) == 1, word


def test_open_clip_contract(tokenizer):
    vocab = demo_tokenizer.vocabulary()
    ids = tokenizer(["A Crimson disc & two blue rings!!", "a photo of a red circle."])
    assert ids.shape == (2, 32) and ids.dtype == torch.int64
    eot = vocab[demo_tokenizer.EOT]
    assert eot == max(vocab.values())  # argmax pooling reads the end-of-text token
    for row in ids.tolist():
        end = row.index(eot)
        assert row[0] == vocab[demo_tokenizer.SOT] and set(row[end + 1 :]) == {0}
    words = tokenizer.tokenizer.convert_ids_to_tokens(ids[1].tolist())
    assert words[1:8] == ["a", "photo", "of", "a", "red", "circle", "."]


def test_other_words_fall_back_to_characters(tokenizer):
    hf = tokenizer.tokenizer
    assert hf.convert_ids_to_tokens(hf("zebra", add_special_tokens=False).input_ids) == [
        "z",
        "##e",
        "##b",
        "##r",
        "##a",
    ]
    assert hf("日", add_special_tokens=False).input_ids == [demo_tokenizer.vocabulary()["<unk>"]]
    long = tokenizer(["red circle " * 40])[0].tolist()
    assert long[-1] == max(demo_tokenizer.vocabulary().values())  # truncation keeps the end
