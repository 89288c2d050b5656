"""SoftCLIP's sample stage: ROIs padded to K, tag sentences tokenised without padding."""

import pickle

import numpy as np
import open_clip
import torch

from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.plugins.softclip.stage import (
    PadTokens,
    RoiSampleStage,
    TagTokenizer,
    unpadded,
)
from alignclip_plugins.rois import storage as S


class _Tokenizer:
    def __call__(self, texts):
        out = torch.zeros(len(texts), 16, dtype=torch.long)
        for i, t in enumerate(texts):
            ids = [49406] + [len(w) for w in t.split()] + [49407]
            out[i, : len(ids)] = torch.tensor(ids)
        return out


def test_sample_stage_pads_rois_and_trims_tag_tokens(tmp_path):
    rng = np.random.default_rng(4)
    feats = rng.standard_normal((3, S.ROI_DIM)).astype(np.float32)
    tags = ["attr0 thing0", "attr1 thing1", "attr2 thing2"]
    samples = [("a", feats, rng.random(3), tags), ("b", np.zeros((0, S.ROI_DIM)), [], [])]
    S.write_sidecar(tmp_path, "train-000007.tar", samples, 2, max_rois=4, dim=S.ROI_DIM)
    stage = RoiSampleStage(str(tmp_path), 2, _Tokenizer())
    url = str(tmp_path / "elsewhere" / "train-000007.tar")
    out = list(stage(iter([{"__key__": "a", "__url__": url}, {"__key__": "b", "__url__": url}])))
    assert out[0]["roi_features"].shape == (2, S.ROI_DIM)
    assert out[0]["roi_features"].dtype == torch.float16
    assert out[0]["roi_mask"].tolist() == [True, True]
    assert out[1]["roi_mask"].tolist() == [False, False] and not out[1]["roi_features"].any()
    assert out[0]["tag_text"].tolist()[0] == 49406 and out[0]["tag_text"].tolist()[-1] == 49407
    assert out[1]["tag_text"].tolist() == [49406, 49407]  # empty tag sentence
    batch = PadTokens(0)([o["tag_text"] for o in out])
    assert batch.shape == (2, len(out[0]["tag_text"])) and batch[1, 2:].eq(0).all()
    assert len(pickle.loads(pickle.dumps(stage))._readers) == 0  # workers open their own maps


def test_shuffled_shards_open_each_sidecar_once(tmp_path):
    # upstream shuffles samples before the stage: a worker sees its shards interleaved
    rng = np.random.default_rng(0)
    shards = [f"train-{i:06d}.tar" for i in range(6)]
    for i, shard in enumerate(shards):
        samples = [
            (f"{i}-{j}", rng.standard_normal((1, S.ROI_DIM)), [0.9], [f"attr thing{i}"])
            for j in range(3)
        ]
        S.write_sidecar(tmp_path, shard, samples, 3, max_rois=2, dim=S.ROI_DIM)
    stage = RoiSampleStage(str(tmp_path), 2, _Tokenizer())
    stream = [{"__key__": f"{i}-{j}", "__url__": shards[i]} for j in range(3) for i in range(6)]
    out = list(stage(iter(stream)))
    assert [o["roi_mask"].sum().item() for o in out] == [1] * 18
    assert stage._readers.reads == 6


def test_cached_tag_tokens_equal_the_tokenizers_own():
    tok = open_clip.get_tokenizer(model_arg())  # context 32: long sentences are truncated
    tags = TagTokenizer(tok)
    assert tags.fast
    rng = np.random.default_rng(5)
    words = ["white", "shirt", "t-shirt", "man's", "hat", "3d", "ÉCOLE", "a.", "b,", "&amp;", "x"]
    cases = [[], ["red circle"], ["a.", "b"], ["hello,", "x"]]
    cases += [
        [" ".join(rng.choice(words, 2)) for _ in range(rng.integers(1, 12))] for _ in range(60)
    ]
    for case in cases:
        expected = unpadded(tok([", ".join(case)])[0])
        assert torch.equal(tags(case), expected), case
    assert tags.cache["a."] is None and tags.cache["red circle"] is not None
