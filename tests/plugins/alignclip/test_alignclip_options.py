"""Start-up checks of the --alignclip-* options, through open_clip_train's own parser."""

import json
import shutil

import pytest
from open_clip_train.params import parse_args

from alignclip_plugins.model_configs import model_arg


def argv(data, objects, *extra, with_objects=True):
    manifest = json.loads((data / "manifest.json").read_text())
    out = [
        "--model", model_arg(), "--train-data", str(data / manifest["splits"]["train"]["pattern"]),
        "--train-num-samples", "256", "--dataset-type", "webdataset", "--plugins", "alignclip",
    ]  # fmt: skip
    if with_objects:
        out += ["--alignclip-objects", str(objects["objects"])]
        out += ["--alignclip-vocabulary", str(objects["vocabulary"])]
    return out + list(extra)


def start_up_error(capsys, args) -> str:
    with pytest.raises(SystemExit) as e:
        parse_args(args)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_defaults(synth_data, synth_objects):
    args = parse_args(argv(synth_data, synth_objects))
    assert args.loss == "object-iou" and args.oiou_beta == 0.5
    assert args.alignclip_domains == (1.0, 0.0, 0.0)
    assert args.alignclip_rho == 0.5 and args.alignclip_templates == "openai"
    assert args.alignclip_zeroshot_prototypes == "templates"
    assert not args.alignclip_allow_missing_sidecars


def test_three_domains(synth_data, synth_objects):
    args = parse_args(
        argv(
            synth_data, synth_objects, "--alignclip-domains", "0.5,0.25,0.25",
            "--alignclip-descriptions", str(synth_objects["descriptions"]),
            "--alignclip-templates", "simple", "--alignclip-rho", "1",
        )
    )  # fmt: skip
    assert args.alignclip_domains == (0.5, 0.25, 0.25)


def test_missing_sidecar_lists_the_shards_and_the_command(synth_data, synth_objects, tmp_path,
                                                          capsys):  # fmt: skip
    partial = tmp_path / "objects"
    shutil.copytree(synth_objects["objects"], partial)
    (partial / "train-000002.objects.jsonl").unlink()
    objects = {**synth_objects, "objects": partial}
    err = start_up_error(capsys, argv(synth_data, objects))
    assert "1 training shard(s) have no object sidecar" in err
    assert "train/train-000002.tar" in err and "train-000001.tar" not in err.split("write")[0]
    assert f"alignclip objects parse '{synth_data}/train/train-{{000000..000003}}.tar'" in err
    assert f"--out {partial}" in err and "--alignclip-allow-missing-sidecars" in err
    parse_args(argv(synth_data, objects, "--alignclip-allow-missing-sidecars"))  # opted out


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--alignclip-domains", "0.5,0.5"], "three comma-separated probabilities"),
        (["--alignclip-domains", "0.5,0.5,0.5"], "sum to 1"),
        (["--alignclip-rho", "-1"], "--alignclip-rho must be"),
        (["--alignclip-templates", "/nonexistent.txt"], "--alignclip-templates"),
        (["--alignclip-domains", "0.5,0,0.5"], "give --alignclip-descriptions FILE"),
        (["--alignclip-descriptions", "/nonexistent.json"], "does not exist"),
        (["--alignclip-zeroshot-prototypes", "both"], "needs --alignclip-zeroshot-descriptions"),
        (["--accum-freq", "2"], "does not support --accum-freq > 1"),
        (["--dataset-type", "csv"], "use --dataset-type webdataset"),
    ],
)
def test_bad_options_stop_at_start_up(synth_data, synth_objects, capsys, extra, message):
    assert message in start_up_error(capsys, argv(synth_data, synth_objects, *extra))


def test_training_needs_objects_and_vocabulary(synth_data, synth_objects, capsys):
    err = start_up_error(capsys, argv(synth_data, synth_objects, with_objects=False))
    assert "needs --alignclip-objects DIR" in err and "alignclip objects parse" in err
    err = start_up_error(
        capsys,
        argv(synth_data, synth_objects, "--alignclip-objects", str(synth_objects["objects"]),
             with_objects=False),
    )  # fmt: skip
    assert "needs --alignclip-vocabulary FILE" in err and "alignclip objects stats" in err


def test_files_that_do_not_match(synth_data, synth_objects, tmp_path, capsys):
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"zebra": ["a striped horse"]}))
    err = start_up_error(
        capsys,
        argv(synth_data, synth_objects, "--alignclip-domains", "0,0,1",
             "--alignclip-descriptions", str(other)),
    )  # fmt: skip
    objects = json.loads(synth_objects["vocabulary"].read_text())["objects"]
    assert f"--alignclip-descriptions {other} describes none of the {len(objects)} objects" in err
    vocab = tmp_path / "vocab.json"
    vocab.write_text(
        json.dumps({"objects": [{"name": "zebra", "count": 3, "tail": False}],
                    "tail_fraction": 0.3, "min_count": 1, "num_captions": 3})
    )  # fmt: skip
    err = start_up_error(capsys, argv(synth_data, {**synth_objects, "vocabulary": vocab}))
    assert "none of the objects in" in err and "different parses" in err
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    err = start_up_error(capsys, argv(synth_data, {**synth_objects, "vocabulary": bad}))
    assert "--alignclip-vocabulary:" in err and str(bad) in err


def test_zeroshot_descriptions_must_cover_imagenet(synth_data, synth_objects, tmp_path, capsys):
    from open_clip import IMAGENET_CLASSNAMES

    partial = tmp_path / "imagenet-descriptions.json"
    partial.write_text(json.dumps({c: [f"a {c}"] for c in IMAGENET_CLASSNAMES[:-2]}))
    zs = ["--alignclip-zeroshot-prototypes", "descriptions",
          "--alignclip-zeroshot-descriptions", str(partial)]  # fmt: skip
    parse_args(argv(synth_data, synth_objects, *zs))  # no ImageNet eval: nothing to check
    err = start_up_error(
        capsys, argv(synth_data, synth_objects, *zs, "--imagenet-val", str(tmp_path))
    )
    assert "2 of 1000 classes have no visual description" in err and str(partial) in err


def test_eval_only_needs_no_objects(tmp_path):
    args = parse_args(["--model", model_arg(), "--plugins", "alignclip"])
    assert args.train_data is None
