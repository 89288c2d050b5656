import json

import pytest

from alignclip_plugins.evaluation.results import (
    EvalResult,
    format_table,
    read_result,
    read_results,
    result_path,
    slug,
    write_result,
)


def _result(**kw) -> EvalResult:
    base = dict(
        task="zeroshot", dataset="imagenet", checkpoint="/x/epoch_3.pt", model="ViT-B-32",
        epoch=3, metrics={"top1": 0.5, "top5": 0.75}, options={"split": "test"},
    )  # fmt: skip
    return EvalResult(**{**base, **kw})


def test_paths_follow_the_run_layout(tmp_path):
    ckpt = tmp_path / "logs" / "run-a" / "checkpoints" / "epoch_3.pt"
    assert (
        result_path("zeroshot", "imagenet", ckpt)
        == tmp_path / "logs/run-a/evals/zeroshot-imagenet.json"
    )
    assert result_path("gradcam", None, ckpt) == tmp_path / "logs/run-a/evals/gradcam.json"
    loose = tmp_path / "weights" / "model.pt"
    assert (
        result_path("retrieval", "Flickr 30K", loose)
        == tmp_path / "weights/model.evals/retrieval-flickr_30k.json"
    )
    assert (
        result_path("retrieval", "mscoco", loose, tmp_path / "o")
        == tmp_path / "o/retrieval-mscoco.json"
    )
    with pytest.raises(ValueError, match="--out"):
        result_path("retrieval", "mscoco", None)
    assert slug("wds/vtab/cifar10") == "wds_vtab_cifar10" and slug("rOxford5k") == "roxford5k"


def test_write_read_round_trip_is_atomic(tmp_path):
    path = tmp_path / "run" / "evals" / "zeroshot-imagenet.json"
    result = _result(details={"images": 10, "ratio": float("nan")}, artifacts=[tmp_path / "a.png"])
    write_result(result, path)
    data = json.loads(path.read_text())
    assert set(data) >= {
        "task",
        "dataset",
        "checkpoint",
        "model",
        "epoch",
        "metrics",
        "options",
        "created",
    }
    assert data["details"]["ratio"] is None  # NaN is not JSON
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary left
    back = read_result(path)
    assert (back.task, back.dataset, back.epoch, back.metrics) == (
        "zeroshot",
        "imagenet",
        3,
        result.metrics,
    )
    assert back.created and back.artifacts == [str(tmp_path / "a.png")]


def test_read_results_finds_runs_and_rejects_strangers(tmp_path):
    for run, task in (("a", "zeroshot"), ("b", "retrieval")):
        write_result(_result(task=task), tmp_path / run / "evals" / f"{task}-imagenet.json")
    write_result(_result(task="copy-detection"), tmp_path / "w.evals" / "copy-detection.json")
    assert [r.task for r in read_results(tmp_path)] == ["zeroshot", "retrieval", "copy-detection"]
    assert [r.task for r in read_results(tmp_path / "b")] == ["retrieval"]
    assert [r.task for r in read_results(tmp_path / "a" / "evals")] == ["zeroshot"]
    (tmp_path / "a" / "evals" / "other.json").write_text('{"task": "x"}')
    with pytest.raises(ValueError, match=r"other.json: not an evaluation result, it lacks"):
        read_results(tmp_path / "a")
    (tmp_path / "a" / "evals" / "other.json").write_text(
        json.dumps({**_result().to_json(), "metrics": {"top1": "high"}})
    )
    with pytest.raises(ValueError, match="'metrics' must map metric names to numbers"):
        read_result(tmp_path / "a" / "evals" / "other.json")
    with pytest.raises(FileNotFoundError):
        read_results(tmp_path / "absent")


def test_format_table():
    table = format_table([("run-a", {"top1": 0.5}), ("run-b", {"top1": 0.25, "top5": 1.0})])
    assert table.splitlines() == [
        "| | top1 | top5 |",
        "|---|---|---|",
        "| run-a | 50.00 | - |",
        "| run-b | 25.00 | 100.00 |",
    ]


def test_read_results_of_an_out_directory(tmp_path):
    write_result(_result(), tmp_path / "out" / "zeroshot-imagenet.json")
    write_result(
        _result(task="retrieval"), tmp_path / "out" / "model_b" / "retrieval-imagenet.json"
    )
    (tmp_path / "out" / "notes.json").write_text('{"anything": 1}')  # not ours: skipped here
    assert sorted(r.task for r in read_results(tmp_path / "out")) == ["retrieval", "zeroshot"]
