"""``alignclip eval retrieval`` on Flickr30K's on-disk format, clip_benchmark's wds/ layout
and webdataset caption shards; the recall metrics against clip_benchmark's own."""

import pytest
import torch

from alignclip_plugins.evaluation.results import read_result
from alignclip_plugins.evaluation.retrieval import Embeddings, recall_metrics

CAPTIONS = [
    ["a red block on grey", "something red"],
    ["two blue squares", "blue things, side by side", "a pair of squares"],
    ["green noise"],
    ["a yellow pattern", "yellow"],
    ["stripes of purple", "purple"],
    ["an orange mosaic", "orange tiles"],
]


def _flickr(root, write_image):
    """Flickr30K as clip_benchmark reads it: images in ROOT, captions in
    ROOT/flickr30k_test_karpathy.txt (a header, then 'image.jpg,caption' lines)."""
    lines = ["image,caption"]
    for i, caps in enumerate(CAPTIONS):
        write_image(root / f"{1000 + i}.jpg", 100 + i)
        lines += [f"{1000 + i}.jpg,{c}" for c in caps]
    (root / "flickr30k_test_karpathy.txt").write_text("\n".join(lines) + "\n")
    return root


def test_flickr30k_layout_matches_clip_benchmark(
    tiny_run, tiny_model, tmp_path, write_image, run_eval
):
    from clip_benchmark.datasets.builder import build_dataset, image_captions_collate_fn
    from clip_benchmark.metrics import zeroshot_retrieval

    from alignclip_plugins.evaluation.checkpoint import load_model

    root = _flickr(tmp_path / "flickr", write_image)
    code, out, err = run_eval(
        "retrieval", "--checkpoint", tiny_run, "--dataset", "flickr30k", "--data", root,
        "--workers", 0, "--batch-size", 4, "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    ours = read_result(tiny_run.parent.parent / "evals" / "retrieval-flickr30k.json")
    assert ours.details == {"images": 6, "captions": 12}
    assert "text_to_image_R@1" in out

    loaded = load_model(tiny_model, checkpoint=tiny_run)
    dataset = build_dataset("flickr30k", root=str(root), transform=loaded.preprocess, split="test",
                            task="zeroshot_retrieval")  # fmt: skip
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=4, collate_fn=image_captions_collate_fn
    )
    theirs = zeroshot_retrieval.evaluate(
        loaded.model, loader, loaded.tokenizer, "cpu", amp=False, recall_k_list=[1, 5]
    )  # (clip_benchmark cannot take k above the gallery size: 6 images here)
    for k in (1, 5):
        assert ours.metrics[f"text_to_image_R@{k}"] == pytest.approx(
            theirs[f"image_retrieval_recall@{k}"]
        )
        assert ours.metrics[f"image_to_text_R@{k}"] == pytest.approx(
            theirs[f"text_retrieval_recall@{k}"]
        )


def test_caption_shards_and_clip_benchmark_wds(
    synth_data, tiny_run, tmp_path, noise, write_cb_wds, run_eval
):
    code, _, err = run_eval(
        "retrieval", "--checkpoint", tiny_run, "--data", synth_data / "retrieval", "--workers", 2,
        "--out", tmp_path / "a",
    )  # fmt: skip
    assert code == 0, err
    shards = read_result(tmp_path / "a" / "retrieval-retrieval.json")
    assert shards.details == {"images": 64, "captions": 64}
    r = shards.metrics
    assert r["text_to_image_R@1"] <= r["text_to_image_R@5"] <= r["text_to_image_R@10"]

    root = write_cb_wds(tmp_path / "caps", [(noise(i), CAPTIONS[i]) for i in range(6)])
    code, _, err = run_eval(
        "retrieval",
        "--checkpoint",
        tiny_run,
        "--data",
        root,
        "--workers",
        0,
        "--out",
        tmp_path / "b",
    )
    assert code == 0, err
    wds = read_result(tmp_path / "b" / "retrieval-caps.json")
    assert (
        wds.details == {"images": 6, "captions": 12} and wds.options["clip_benchmark"] == "wds/caps"
    )
    assert wds.metrics["image_to_text_R@10"] == 1.0  # 12 captions, every image's within 10


def test_missing_layouts(tiny_run, tmp_path, synth_data, run_eval):
    (tmp_path / "coco").mkdir()
    code, _, err = run_eval(
        "retrieval", "--checkpoint", tiny_run, "--dataset", "mscoco", "--data", tmp_path / "coco"
    )
    assert code == 1 and "coco_test_karpathy.json" in err and "val2014" in err
    code, _, err = run_eval(
        "retrieval", "--checkpoint", tiny_run, "--data", synth_data / "zeroshot", "--workers", 0
    )
    assert code == 1 and "lacks ['txt']" in err


def test_recall_metrics_hand_made_and_chunked():
    # 2 images, 4 captions: captions 0, 1 -> image 0; captions 2, 3 -> image 1 (as in
    # test_eval_metrics, but through the embedding-level function)
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    texts = torch.nn.functional.normalize(
        torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.3, 0.7], [0.6, 0.5]]), dim=1
    )
    emb = Embeddings(images, texts, torch.tensor([0, 0, 1, 1]), ["a", "b", "c", "d"], ["0", "1"])
    full = recall_metrics(emb, (1, 2))
    assert full == {
        "image_to_text_R@1": 0.5, "image_to_text_R@2": 1.0,
        "text_to_image_R@1": 0.5, "text_to_image_R@2": 1.0,
    }  # fmt: skip
    assert recall_metrics(emb, (1, 2), chunk=1) == full
    torch.manual_seed(0)
    big = Embeddings(
        torch.nn.functional.normalize(torch.randn(50, 8), dim=1),
        torch.nn.functional.normalize(torch.randn(120, 8), dim=1),
        torch.randint(0, 50, (120,)).sort().values,
        [""] * 120,
        [str(i) for i in range(50)],
    )
    big.owner[:50] = torch.arange(50)  # every image owns a caption
    assert recall_metrics(big, chunk=7) == recall_metrics(big, chunk=1000)


def test_five_caption_protocol_hand_computed():
    """Flickr's protocol: 2 images x 5 captions, unit vectors at the given angles.

    Image 0 is (1, 0): scores cos(angle); image 1 is (0, 1): scores sin(angle).
    image→text: image 0's best caption overall is at 5° (image 1's), its own 10° is second:
    a miss at R@1, a hit at R@5 (any of its five counts); image 1's best is its own 89°.
    text→image: a caption below 45° goes to image 0. Image 0's 10°, 20° hit, 50°, 80°, 85°
    miss; image 1's 60°, 70°, 88°, 89° hit, 5° misses: 6 of 10 queries at R@1.
    """
    import math

    angles = [10, 20, 80, 85, 50, 5, 60, 70, 88, 89]
    texts = torch.tensor([[math.cos(math.radians(a)), math.sin(math.radians(a))] for a in angles])
    emb = Embeddings(
        torch.tensor([[1.0, 0.0], [0.0, 1.0]]),
        texts,
        torch.tensor([0] * 5 + [1] * 5),
        [f"{a} degrees" for a in angles],
        ["img0", "img1"],
    )
    got = recall_metrics(emb, (1, 2, 5))
    assert got == pytest.approx({
        "image_to_text_R@1": 0.5, "image_to_text_R@2": 1.0, "image_to_text_R@5": 1.0,
        "text_to_image_R@1": 0.6, "text_to_image_R@2": 1.0, "text_to_image_R@5": 1.0,
    })  # fmt: skip


def test_multi_caption_shards_every_caption_a_query(
    multicaption_data, tiny_run, tmp_path, run_eval
):
    """Flickr8k-layout shards (five captions a line each, `alignclip captions convert`)."""
    code, out, err = run_eval(
        "retrieval", "--checkpoint", tiny_run, "--data", multicaption_data["val"],
        "--dataset-name", "flickr8k", "--workers", 0, "--out", tmp_path,
    )  # fmt: skip
    assert code == 0, err
    result = read_result(tmp_path / "retrieval-flickr8k.json")
    assert result.details == {"images": 8, "captions": 40}
    assert result.metrics["text_to_image_R@10"] == 1.0  # 8 images: every one in the top 10
    assert "8 images, 40 captions" in out
