import pytest
import torch

from alignclip_plugins import batching


def test_pad_ids():
    out = batching.pad_ids([[3, 1], [], [7]])
    assert out.tolist() == [[3, 1], [-1, -1], [7, -1]] and out.dtype == torch.long
    assert batching.pad_ids([[1]], width=3).tolist() == [[1, -1, -1]]
    assert batching.pad_ids([[], []]).shape == (2, 0)
    with pytest.raises(ValueError, match="fixed width 1"):
        batching.pad_ids([[1, 2]], width=1)


def test_select_fields_names_the_sample_when_a_field_is_missing():
    select = batching.SelectFields(["objects"])
    sample = {"image": 1, "text": 2, "objects": [1], "json": {}, "__key__": "k"}
    assert select(sample) == {"image": 1, "text": 2, "objects": [1]}
    with pytest.raises(
        KeyError, match=r"sample 'k' of shard-0.tar has no field\(s\) \['objects'\]"
    ):
        select({"image": 1, "text": 2, "__key__": "k", "__url__": "shard-0.tar"})


def test_dict_collator():
    collate = batching.DictCollator({"objects": batching.pad_ids})
    samples = [
        {"image": torch.zeros(3, 2, 2), "text": torch.arange(4), "objects": [5]},
        {"image": torch.ones(3, 2, 2), "text": torch.arange(4), "objects": [1, 2]},
    ]
    batch = collate(samples)
    assert batch["image"].shape == (2, 3, 2, 2) and batch["text"].shape == (2, 4)
    assert batch["objects"].tolist() == [[5, -1], [1, 2]]


def test_to_device_matches_upstream_tuple_handling():
    images, texts = torch.rand(2, 3, 4, 4), torch.arange(8).view(2, 4)
    batch = batching.to_device((images, texts), device="cpu", input_dtype=torch.bfloat16)
    assert batch["image"].dtype == torch.bfloat16 and torch.equal(batch["text"], texts)
    batch = batching.to_device(
        {
            "image": images,
            "text": texts,
            "ids": torch.ones(2, dtype=torch.long),
            "keys": ["a", "b"],
        },
        device="cpu",
        input_dtype=None,
    )
    assert batch["image"].dtype == torch.float32 and batch["ids"].dtype == torch.long
    assert batch["keys"] == ["a", "b"]
