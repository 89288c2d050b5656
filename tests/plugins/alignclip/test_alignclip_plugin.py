"""The alignclip plugin's hooks: loss, stages, collation, loss inputs, zero-shot prototypes."""

import json

import pytest
import torch
from open_clip_train.params import parse_args

from alignclip_plugins import host
from alignclip_plugins.captions.choice import CaptionChoiceStage
from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.objects.sample_objects import AttachObjectIds
from alignclip_plugins.plugins import alignclip
from alignclip_plugins.plugins.alignclip.stages import TextDomainStage


@pytest.fixture
def train_args(synth_data, synth_objects):
    manifest = json.loads((synth_data / "manifest.json").read_text())
    return parse_args(
        [
            "--model", model_arg(), "--dataset-type", "webdataset", "--plugins", "alignclip",
            "--train-data", str(synth_data / manifest["splits"]["train"]["pattern"]),
            "--train-num-samples", "256", "--batch-size", "8",
            "--alignclip-objects", str(synth_objects["objects"]),
            "--alignclip-vocabulary", str(synth_objects["vocabulary"]),
            "--alignclip-domains", "0.4,0.3,0.3",
            "--alignclip-descriptions", str(synth_objects["descriptions"]),
        ]
    )  # fmt: skip


def test_registers_object_iou_refusing_accumulation():
    h = host.PluginHost(["alignclip"])
    spec = h.losses.get("object-iou")
    assert h.default_loss == "object-iou"
    assert spec.plugin == "alignclip" and not spec.supports_accum


def test_stages_and_collation_build_padded_id_batches(train_args, synth_data):
    import webdataset as wds

    stages = host.sample_stages(train_args, is_train=True, tokenizer=None)
    # the captions plugin (required) chooses the caption first, then the object set
    assert [type(s) for s in stages] == [CaptionChoiceStage, AttachObjectIds, TextDomainStage]
    assert host.sample_stages(train_args, is_train=False, tokenizer=None) == []
    shards = sorted(str(p) for p in (synth_data / "train").glob("*.tar"))
    pipeline = wds.DataPipeline(
        wds.SimpleShardList(shards),
        wds.tarfile_to_samples(),
        wds.decode("pilrgb"),
        wds.rename(image="png", text="txt"),
        *stages,
        wds.map_dict(image=lambda im: torch.zeros(3, 2, 2), text=lambda t: torch.zeros(4)),
        *host.batch_stages(train_args, is_train=True, default=[]),
    )
    batch = next(iter(pipeline))
    assert set(batch) == {"image", "text", "image_objects", "text_objects"}
    image_objects, text_objects = batch["image_objects"], batch["text_objects"]
    assert image_objects.dtype == text_objects.dtype == torch.long
    assert image_objects.shape[0] == text_objects.shape[0] == 8
    # a caption naming no class (only shapes: "two rings") has an empty set, all padding
    named = (image_objects >= 0).any(dim=1)
    assert named.any() and not (image_objects[~named] != -1).any()
    assert ((image_objects == -1) | (image_objects >= 0)).all()
    # a prompt or description names one object of the image's set
    for img, txt in zip(image_objects.tolist(), text_objects.tolist()):
        img, txt = {i for i in img if i >= 0}, {t for t in txt if t >= 0}
        assert txt == img or (len(txt) == 1 and txt <= img)


def test_collate_fields_only_for_training(train_args):
    fields = alignclip.octrain_collate_fields(train_args, True)
    assert set(fields) == {"image_objects", "text_objects"}
    assert fields["image_objects"]([(3, 1), (), (2,)]).tolist() == [[3, 1], [-1, -1], [2, -1]]
    assert alignclip.octrain_collate_fields(train_args, False) is None


def test_forward_features_pass_the_ids(train_args):
    batch = {"image_objects": torch.tensor([[1, -1]]), "text_objects": torch.tensor([[1]])}
    out = host.forward_features(None, batch, {"image_features": None}, train_args)
    assert out["image_objects"] is batch["image_objects"]
    assert out["text_objects"] is batch["text_objects"]
    train_args.accum_freq = 2  # only reachable with another plugin's loss
    assert host.forward_features(None, batch, {}, train_args) == {}


def _classifier(args, classnames, templates):
    import open_clip

    torch.manual_seed(0)
    model = open_clip.create_model(model_arg()).eval()
    tokenizer = open_clip.get_tokenizer(model_arg())

    def upstream(*a, **k):
        return "upstream"

    build = host.zero_shot_classifier(args, default=upstream)
    return model, tokenizer, build(model, tokenizer, classnames, templates, device="cpu")


@pytest.mark.parametrize("source", ["templates", "descriptions", "both"])
def test_zero_shot_prototypes(tmp_path, source):
    from alignclip_plugins.evaluation.zeroshot import text_prototypes

    classes = ["red circle", "blue square", "green star"]
    descriptions = tmp_path / "d.json"
    descriptions.write_text(json.dumps({c: [f"{c}, seen from above", f"a flat {c}"]
                                        for c in classes}))  # fmt: skip
    args = parse_args(
        ["--model", model_arg(), "--plugins", "alignclip",
         "--alignclip-zeroshot-prototypes", source,
         "--alignclip-zeroshot-descriptions", str(descriptions)]
    )  # fmt: skip
    templates = [lambda c: f"a photo of a {c}.", lambda c: f"a drawing of a {c}."]
    model, tokenizer, got = _classifier(args, classes, templates)
    if source == "templates":
        assert got == "upstream"  # upstream's own classifier, untouched
        return
    prompts = {
        "descriptions": [[f"{c}, seen from above", f"a flat {c}"] for c in classes],
        "both": [
            [f"a photo of a {c}.", f"a drawing of a {c}.", f"{c}, seen from above", f"a flat {c}"]
            for c in classes
        ],
    }[source]
    expected = text_prototypes(model, tokenizer, prompts, "cpu")
    assert got.shape == (model.text_projection.shape[1], 3)
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got.norm(dim=0), torch.ones(3))
