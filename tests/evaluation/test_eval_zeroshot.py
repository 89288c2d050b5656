"""``alignclip eval zeroshot`` end to end on tiny data in each supported on-disk format."""

import io
import json
import tarfile
from pathlib import Path

import pytest
import torch

from alignclip_plugins.evaluation.results import read_result


def _extract_to_folders(shards: list[Path], root: Path) -> None:
    """The synthetic zero-shot shards as an ImageFolder: ``root/<class index:03d>/<key>.png``."""
    for shard in shards:
        with tarfile.open(shard) as tar:
            members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
        for name, data in members.items():
            if name.endswith(".cls"):
                key = name[: -len(".cls")]
                folder = root / f"{int(data):03d}"
                folder.mkdir(parents=True, exist_ok=True)
                (folder / f"{key}.png").write_bytes(members[f"{key}.png"])


def test_webdataset_and_class_folders_agree(synth_data, tiny_run, tmp_path, run_eval):
    shards = sorted((synth_data / "zeroshot").glob("*.tar"))
    common = [
        "--checkpoint",
        tiny_run,
        "--templates",
        "simple",
        "--batch-size",
        16,
        "--precision",
        "fp32",
    ]
    code, out, err = run_eval(
        "zeroshot", *common, "--data", synth_data / "zeroshot", "--workers", 2,
        "--tail", synth_data / "classes.json", "--dataset-name", "synthetic",
    )  # fmt: skip
    assert code == 0, err
    result = read_result(tiny_run.parent.parent / "evals" / "zeroshot-synthetic.json")
    assert (result.task, result.dataset, result.epoch) == ("zeroshot", "synthetic", 3)
    assert result.checkpoint == str(tiny_run) and result.model.startswith("local-dir:")
    assert set(result.metrics) == {"top1", "top5", "tail_top1", "mean_per_class_recall"}
    assert result.options["num_classes"] == 48 and result.details["images"] == 96
    assert result.details["tail_classes"] == sum(
        json.loads((synth_data / "classes.json").read_text())["tail"]
    )
    assert "| run-a/epoch_3 |" in out and "tail_top1" in out

    folders = tmp_path / "folders"
    _extract_to_folders(shards, folders)
    code, _, err = run_eval(
        "zeroshot", *common, "--data", folders, "--classnames", synth_data / "classnames.txt",
        "--workers", 0, "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, err
    again = read_result(tmp_path / "out" / "zeroshot-folders.json")
    for k in ("top1", "top5", "mean_per_class_recall"):
        assert again.metrics[k] == pytest.approx(result.metrics[k])


def test_prototypes_from_descriptions_or_both(synth_data, tiny_run, tmp_path, run_eval):
    common = [
        "--checkpoint", tiny_run, "--data", synth_data / "zeroshot", "--workers", 0,
        "--templates", "simple", "--descriptions", synth_data / "descriptions.json",
    ]  # fmt: skip
    tops = {}
    for prototypes in ("templates", "descriptions", "both"):
        out = tmp_path / prototypes
        code, _, err = run_eval("zeroshot", *common, "--prototypes", prototypes, "--out", out)
        assert code == 0, err
        result = read_result(out / "zeroshot-zeroshot.json")
        assert result.options["prototypes"] == prototypes
        tops[prototypes] = result.metrics["top1"]
    assert len(set(tops.values())) >= 2  # different prototypes, different classifiers
    (tmp_path / "partial.json").write_text(json.dumps({"red circle": ["a round red disc"]}))
    code, _, err = run_eval(
        "zeroshot", *common[:-2], "--prototypes", "both",
        "--descriptions", tmp_path / "partial.json",
    )  # fmt: skip
    assert code == 1 and "47 of 48 classes have no visual description" in err


def test_clip_benchmark_wds_layout_matches_clip_benchmark(
    tiny_run, tiny_model, tmp_path, noise, write_cb_wds, run_eval
):
    """A dataset in clip_benchmark's wds/ layout, evaluated by us and by clip_benchmark's
    own zero-shot classification: the same top-1 and top-5."""
    from clip_benchmark.datasets.builder import build_dataset
    from clip_benchmark.metrics import zeroshot_classification

    from alignclip_plugins.evaluation.benchmarks import register
    from alignclip_plugins.evaluation.checkpoint import load_model

    classes = ["cat", "dog", "bird", "fish", "horse", "car", "tree"]
    templates = ["a photo of a {c}.", "a sketch of the {c}."]
    root = write_cb_wds(
        tmp_path / "animals",
        [(noise(i), i % 7) for i in range(40)],
        classes,
        templates,
        per_shard=16,
    )
    code, out, err = run_eval(
        "zeroshot",
        "--checkpoint",
        tiny_run,
        "--data",
        root,
        "--workers",
        0,
        "--templates",
        "dataset",
        "--precision",
        "fp32",
    )
    assert code == 0, err
    ours = read_result(tiny_run.parent.parent / "evals" / "zeroshot-animals.json")
    assert ours.options["clip_benchmark"] == "wds/animals" and ours.details["images"] == 40

    register()  # mends clip_benchmark's accuracy under numpy >= 2.4
    loaded = load_model(tiny_model, checkpoint=tiny_run)
    dataset = build_dataset(
        "wds/animals", root=str(root), transform=loaded.preprocess, split="test"
    )
    loader = torch.utils.data.DataLoader(dataset.batched(16), batch_size=None, num_workers=0)
    theirs = zeroshot_classification.evaluate(
        loaded.model, loader, loaded.tokenizer, dataset.classes, dataset.templates, "cpu", amp=False
    )
    assert ours.metrics["top1"] == pytest.approx(theirs["acc1"])
    assert ours.metrics["top5"] == pytest.approx(theirs["acc5"])
    assert ours.metrics["mean_per_class_recall"] == pytest.approx(theirs["mean_per_class_recall"])


def test_named_clip_benchmark_dataset_in_torchvision_layout(
    tiny_run, tmp_path, write_image, run_eval
):
    """Oxford-IIIT Pets as torchvision lays it out, through clip_benchmark's builder and its
    Pets prompt templates."""
    import clip_benchmark

    pets = tmp_path / "pets" / "oxford-iiit-pet"
    lines = []
    for label, breed in enumerate(["Abyssinian", "Bengal", "beagle"], start=1):
        for i in range(1, 4):
            write_image(pets / "images" / f"{breed}_{i}.jpg", 10 * label + i)
            lines.append(f"{breed}_{i} {label} 1 1")
    (pets / "annotations").mkdir()
    (pets / "annotations" / "test.txt").write_text("\n".join(lines) + "\n")
    code, out, err = run_eval(
        "zeroshot",
        "--checkpoint",
        tiny_run,
        "--dataset",
        "pets",
        "--data",
        tmp_path / "pets",
        "--workers",
        0,
    )
    assert code == 0, err
    result = read_result(tiny_run.parent.parent / "evals" / "zeroshot-pets.json")
    packaged = (
        Path(clip_benchmark.__file__).parent
        / "datasets"
        / "en_zeroshot_classification_templates.json"
    )
    n_templates = len(json.loads(packaged.read_text())["pets"])
    assert result.options["num_templates"] == n_templates and result.options["num_classes"] == 3
    assert result.details["images"] == 9


def test_missing_and_malformed_data_say_what_was_expected(synth_data, tiny_run, tmp_path, run_eval):
    ckpt = ["--checkpoint", tiny_run, "--workers", 0]
    (tmp_path / "empty").mkdir()
    code, _, err = run_eval("zeroshot", *ckpt, "--dataset", "pets", "--data", tmp_path / "empty")
    assert code == 1 and "oxford-iiit-pet/images" in err and str(tmp_path / "empty") in err
    code, _, err = run_eval(
        "zeroshot", *ckpt, "--dataset", "imagenet", "--data", tmp_path / "nowhere"
    )
    assert code == 1 and "does not exist" in err and "ILSVRC2012" in err

    lonely = tmp_path / "lonely"
    lonely.mkdir()
    (lonely / "a-000.tar").write_bytes(
        (synth_data / "zeroshot" / "zeroshot-000000.tar").read_bytes()
    )
    code, _, err = run_eval("zeroshot", *ckpt, "--data", lonely)
    assert code == 1 and "need class names: pass --classnames" in err

    bad = tmp_path / "bad"
    bad.mkdir()
    with tarfile.open(bad / "bad-000.tar", "w") as tar:
        for name, data in (("k1.png", _png()), ("k1.cls", b"zebra")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (bad / "classnames.txt").write_text("cat\ndog\n")
    code, _, err = run_eval("zeroshot", *ckpt, "--data", bad)
    assert code == 1 and "'k1'" in err and "bad-000.tar" in err and "class index" in err

    (tmp_path / "tail.txt").write_text("unicorn\n")
    code, _, err = run_eval(
        "zeroshot", *ckpt, "--data", synth_data / "zeroshot", "--tail", tmp_path / "tail.txt"
    )
    assert code == 1 and "'unicorn'" in err


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, format="png")
    return buf.getvalue()


class _IdentityImages:
    """An encoder whose image features are the batch itself (so logits = batch @ classifier)."""

    device = torch.device("cpu")

    def images(self, images):
        return images


def test_top1_top5_tail_and_attribute_accuracy_on_a_hand_made_case():
    from alignclip_plugins.evaluation.zeroshot import evaluate_batches

    # 4 classes: (red, circle) (red, star) (blue, circle) (blue, star); features = one-hot scores
    classifier = torch.eye(4)
    scores = torch.tensor(
        [
            [0.9, 0.1, 0.0, 0.0],  # label 0, predicted 0: right
            [0.9, 0.2, 0.0, 0.0],  # label 1, predicted 0: colour right, shape wrong
            [0.0, 0.0, 0.1, 0.9],  # label 2, predicted 3: colour right, shape wrong
            [0.9, 0.0, 0.0, 0.1],  # label 3, predicted 0: both wrong
        ]
    )
    out = evaluate_batches(
        _IdentityImages(),
        classifier,
        [(scores[:2], [0, 1]), (scores[2:], [2, 3])],
        tail=[False, False, True, True],
        attributes={"colour": [0, 0, 1, 1], "shape": [0, 1, 0, 1]},
    )
    assert out["top1"] == 0.25 and out["top5"] == 1.0 and out["n"] == 4
    assert out["tail_top1"] == 0.0
    assert out["colour_top1"] == 0.75 and out["shape_top1"] == 0.25
    with pytest.raises(ValueError, match="attribute 'shape': 3 values for 4 classes"):
        evaluate_batches(
            _IdentityImages(), classifier, [(scores, [0, 1, 2, 3])], attributes={"shape": [0, 1, 0]}
        )


def test_attributes_file_reports_colour_and_shape_top1(synth_data, tiny_run, tmp_path, run_eval):
    """--attributes (the embedded dataset's attributes.json): <name>_top1 is how often the
    top-1 class has the target's colour / shape, never below top-1; a file that misses a
    class is named."""
    from alignclip_plugins.evaluation.datasets import read_attributes

    names = (synth_data / "classnames.txt").read_text().split("\n")[:-1]
    ids = read_attributes(synth_data / "attributes.json", names)
    assert ids["colour"][:9] == [0] * 8 + [1] and ids["shape"][:9] == [*range(8), 0]
    code, _, err = run_eval(
        "zeroshot", "--checkpoint", tiny_run, "--templates", "simple", "--precision", "fp32",
        "--data", synth_data / "zeroshot", "--attributes", synth_data / "attributes.json",
        "--dataset-name", "synthetic", "--out", tmp_path / "out",
    )  # fmt: skip
    assert code == 0, err
    metrics = read_result(tmp_path / "out" / "zeroshot-synthetic.json").metrics
    assert {"colour_top1", "shape_top1"} <= set(metrics)
    assert min(metrics["colour_top1"], metrics["shape_top1"]) >= metrics["top1"]
    partial = json.loads((synth_data / "attributes.json").read_text())
    partial["names"] = partial["names"][1:]
    partial["attributes"] = {k: v[1:] for k, v in partial["attributes"].items()}
    (tmp_path / "partial.json").write_text(json.dumps(partial))
    with pytest.raises(
        ValueError, match=r"partial.json: no attributes for class\(es\) \['red circle'\]"
    ):
        read_attributes(tmp_path / "partial.json", names)
