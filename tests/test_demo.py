"""The demo's methods, what it prepares for them, its evaluation and its run bookkeeping."""

import json
import shutil

import pytest
import torch

from alignclip_plugins import demo


@pytest.fixture
def manifest(synth_data):
    return json.loads((synth_data / "manifest.json").read_text())


def test_alignclip_methods_prepare_objects_and_vocabulary(synth_data, manifest, tmp_path):
    from alignclip_plugins.objects.sidecar import read_sidecar
    from alignclip_plugins.objects.stats import load_object_vocabulary

    work = tmp_path / "prepared"
    args = demo.method_arguments("alignclip", synth_data, work, manifest)
    option = dict(zip(args[::2], args[1::2]))
    assert option["--plugins"] == "alignclip"
    assert option["--alignclip-objects"] == str(work / "objects")
    assert option["--alignclip-descriptions"] == f"{synth_data}/descriptions.json"
    assert option["--alignclip-domains"] == "0.5,0.25,0.25"
    sidecars = sorted((work / "objects").glob("*.objects.jsonl"))
    assert len(sidecars) == manifest["splits"]["train"]["num_shards"]
    first = read_sidecar(sidecars[0])
    assert len(first) == 64 and all(first.values())  # every synthetic caption names an object
    vocabulary = load_object_vocabulary(option["--alignclip-vocabulary"])
    assert len(vocabulary.names) == 48 and len(vocabulary.tail) == 14
    # a rerun reuses what is prepared
    stamp = {p: p.stat().st_mtime_ns for p in [*sidecars, work / "object-vocabulary.json"]}
    assert demo.method_arguments("object_iou", synth_data, work, manifest)[-1] == str(
        work / "object-vocabulary.json"
    )
    assert {p: p.stat().st_mtime_ns for p in stamp} == stamp


def test_methods_without_placeholders_prepare_nothing(synth_data, manifest, tmp_path):
    assert demo.method_arguments("label_smoothing", synth_data, tmp_path / "w", manifest) == [
        "--plugins",
        "label_smoothing",
    ]
    assert not (tmp_path / "w").exists()


def test_unknown_placeholder_is_named(synth_data, manifest, tmp_path, monkeypatch):
    monkeypatch.setitem(demo.METHODS, "broken", ["--x", "{nothing}"])
    with pytest.raises(KeyError, match="method 'broken': unknown placeholder"):
        demo.method_arguments("broken", synth_data, tmp_path, manifest)


def test_a_run_started_with_other_arguments_is_not_reused(synth_data, manifest, tmp_path):
    budget = demo.Budget(epochs=1)
    run = tmp_path / demo.run_name("label_smoothing", 0)
    run.mkdir()
    cmd = demo.train_command("label_smoothing", synth_data, manifest, tmp_path, 0, budget)
    (run / "demo-command.json").write_text(json.dumps(cmd[:-1] + ["--ls-alpha", "0.3"]))
    with pytest.raises(RuntimeError, match="started with other arguments"):
        demo.train("label_smoothing", synth_data, manifest, tmp_path, 0, budget)


def test_evaluation_reports_template_and_description_prototypes(synth_data, manifest, tmp_path):
    import open_clip

    from alignclip_plugins.model_configs import model_arg

    torch.manual_seed(0)
    model = open_clip.create_model(model_arg())
    checkpoint = tmp_path / "checkpoints" / "epoch_1.pt"
    checkpoint.parent.mkdir()
    torch.save({"epoch": 1, "state_dict": model.state_dict()}, checkpoint)
    metrics = demo.evaluate(checkpoint, synth_data, manifest)
    for key, _ in demo.METRICS:
        assert 0.0 <= metrics[key] <= 1.0, key
    table = demo.summarise({"clip": [metrics, metrics]})
    assert "desc. top-1" in table and "desc. tail top-1" in table and "± 0.0" in table


def test_methods_default_to_one_row_per_method_and_all_adds_the_ablations():
    assert set(demo.DEFAULT_METHODS) <= set(demo.METHODS)
    assert demo.parse_methods(",".join(demo.DEFAULT_METHODS)) == list(demo.DEFAULT_METHODS)
    assert demo.parse_methods("all") == list(demo.METHODS)
    assert demo.parse_methods(" clip , softclip_min ") == ["clip", "softclip_min"]
    with pytest.raises(ValueError, match="unknown method.*'simclr'"):
        demo.parse_methods("clip,simclr")
    with pytest.raises(ValueError, match="unknown method"):
        demo.parse_methods(",")


def test_a_larger_evaluation_set_must_share_the_classes_and_gets_its_own_cache(
    synth_data, manifest, tmp_path
):
    assert demo.eval_set(synth_data, manifest, synth_data) == ("", manifest)
    with pytest.raises(SystemExit, match="no embedded dataset there.*alignclip synth"):
        demo.eval_set(synth_data, manifest, tmp_path / "absent")
    other = tmp_path / "other"
    shutil.copytree(synth_data, other)
    other_manifest = json.loads((other / "manifest.json").read_text())
    other_manifest["options"]["zeroshot_per_class"] += 1
    (other / "manifest.json").write_text(json.dumps(other_manifest))
    tag, loaded = demo.eval_set(synth_data, manifest, other)
    assert tag.startswith("eval") and len(tag) == 12 and loaded == other_manifest
    classes = json.loads((other / "classes.json").read_text())
    classes["names"][0] = "zebra"
    (other / "classes.json").write_text(json.dumps(classes))
    with pytest.raises(SystemExit, match="classes.json differs"):
        demo.eval_set(synth_data, manifest, other)


def test_class_attributes_split_colour_and_shape():
    names = ["red circle", "red star", "blue circle", "light blue star"]
    assert demo.class_attributes(names) == {"colour": [0, 0, 1, 2], "shape": [0, 1, 0, 1]}
    assert demo.class_attributes(["red circle", "red star"])["shape"] == [0, 1]
    with pytest.raises(ValueError, match="'<colour> <shape>'"):
        demo.class_attributes(["red circle", "dog"])


def test_the_default_demo_trains_every_method_then_reuses_the_runs(synth_data, tmp_path, capsys):
    """`tox -e demo` end to end at a tiny budget: every default method trains through
    open_clip_train.main, is evaluated and lands in one table; a rerun trains nothing."""
    out = tmp_path / "demo"
    argv = ["--data", str(synth_data), "--out", str(out), "--epochs", "1", "--batch-size", "32"]
    argv += ["--warmup", "1"]
    assert demo.main(argv) == 0
    table = (out / "demo-results.md").read_text()
    for method in demo.DEFAULT_METHODS:
        assert f"| {method} | 1 |" in table
        assert (out / demo.run_name(method, 0) / "checkpoints" / "epoch_1.pt").is_file()
    assert "colour top-1" in table and "shape top-1" in table
    results = json.loads((out / "demo-results.json").read_text())["results"]
    assert sorted(results) == sorted(demo.DEFAULT_METHODS)

    stamps = {m: (out / demo.run_name(m, 0) / "out.log").stat().st_mtime for m in results}
    capsys.readouterr()
    assert demo.main(argv) == 0
    assert {m: (out / demo.run_name(m, 0) / "out.log").stat().st_mtime for m in results} == stamps
    assert json.loads((out / "demo-results.json").read_text())["results"] == results
