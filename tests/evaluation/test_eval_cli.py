"""``alignclip eval``: the command, its model options and their errors, several tasks in one
process (``--then``)."""

import argparse
import dataclasses

import pytest

from alignclip_plugins.cli import main as alignclip
from alignclip_plugins.evaluation.cli import TASKS, THEN
from alignclip_plugins.evaluation.results import read_result
from alignclip_plugins.evaluation.tasks.base import EvalError


def test_help_lists_every_task(capsys):
    try:
        alignclip(["eval", "--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert all(task in out for task in TASKS)
    assert f"zeroshot ARGS... {THEN} retrieval ARGS..." in " ".join(out.split())


def test_every_task_has_its_own_help(capsys):
    own = {
        "zeroshot": "--prototypes",
        "copy-detection": "--max-rank",
        "logit-distribution": "--top",
        "retrieval-grid": "--num-queries",
        "gradcam": "--word-template",
    }
    for task in TASKS:
        try:
            alignclip(["eval", task, "--help"])
        except SystemExit as e:
            assert e.code == 0
        out = capsys.readouterr().out
        assert f"usage: alignclip eval {task}" in out and "--checkpoint" in out, task
        assert own.get(task, "--data") in out, task
    assert "--split" not in out  # gradcam reads image files, not a dataset


def test_model_option_errors(
    synth_data, tiny_run, plain_checkpoint, tiny_model, tmp_path, run_eval
):
    data = ["--data", synth_data / "retrieval", "--workers", 0]
    cases = [
        ([], "give --checkpoint"),
        (["--checkpoint", tiny_run, "--pretrained", "openai"], "not both"),
        (["--pretrained", "openai"], "--pretrained needs --model"),
        (["--pretrained", "openai", "--model", "RN50"], "pass --out DIR"),
        (
            ["--checkpoint", tiny_run, plain_checkpoint, "--model", "a", "b", "c"],
            "3 --model values for 2",
        ),
        (["--checkpoint", tiny_run, plain_checkpoint], "weights.pt is not inside a training run"),
        (["--checkpoint", tmp_path / "absent.pt"], "absent.pt does not exist"),
        (["--checkpoint", tiny_run, tiny_run], "share the label"),
    ]
    for argv, message in cases:
        code, _, err = run_eval("retrieval", *argv, *data)
        assert code == 1 and message in err, (argv, err)


def test_plain_weights_by_path_through_pretrained(
    synth_data, plain_checkpoint, tiny_model, tmp_path, run_eval
):
    code, _, err = run_eval(
        "retrieval", "--pretrained", plain_checkpoint, "--model", tiny_model,
        "--out", tmp_path / "o",
        "--data", synth_data / "retrieval", "--workers", 0, "--precision", "fp32",
    )  # fmt: skip
    assert code == 0, err
    result = read_result(tmp_path / "o" / "retrieval-retrieval.json")
    assert result.checkpoint == str(plain_checkpoint) and result.epoch is None


def test_then_runs_real_tasks_one_after_the_other(synth_data, tiny_run, tmp_path, run_eval):
    common = ["--checkpoint", tiny_run, "--out", tmp_path, "--workers", 0, "--precision", "fp32"]
    code, _, err = run_eval(
        "zeroshot", *common, "--data", synth_data / "zeroshot", "--dataset-name", "zs",
        THEN, "retrieval", *common, "--data", synth_data / "retrieval", "--dataset-name", "rt",
    )  # fmt: skip
    assert code == 0, err
    assert read_result(tmp_path / "zeroshot-zs.json").metrics["top1"] >= 0
    assert read_result(tmp_path / "retrieval-rt.json").checkpoint == str(tiny_run)


@pytest.fixture
def recorded(monkeypatch, tmp_path):
    """zeroshot and retrieval with their own options and a run that records its arguments
    (``fail[dataset_name]``: what that part's run raises); ``model``: model options that pass
    the up-front checks (a checkpoint file that nothing loads)."""
    ran, fail = [], {}

    def record(args: argparse.Namespace) -> None:
        ran.append(args)
        if args.dataset_name in fail:
            raise fail[args.dataset_name]

    for name in ("zeroshot", "retrieval"):
        monkeypatch.setitem(TASKS, name, dataclasses.replace(TASKS[name], run=record))
    checkpoint = tmp_path / "epoch_1.pt"
    checkpoint.write_bytes(b"")
    model = ["--checkpoint", checkpoint, "--model", "m", "--data", tmp_path / "d"]
    return argparse.Namespace(ran=ran, fail=fail, model=model)


def test_then_runs_each_task_in_turn_in_one_process(recorded, run_eval):
    code, out, err = run_eval(
        "zeroshot", *recorded.model, "--dataset-name", "a", "--prototypes", "descriptions",
        THEN, "retrieval", *recorded.model, "--dataset-name", "b",
        THEN, "zeroshot", *recorded.model, "--dataset-name", "c",
    )  # fmt: skip
    assert code == 0, err
    assert [(a.task, a.dataset_name) for a in recorded.ran] == [
        ("zeroshot", "a"), ("retrieval", "b"), ("zeroshot", "c")
    ]  # fmt: skip
    zeroshot, retrieval, again = recorded.ran
    assert zeroshot.prototypes == "descriptions" and again.prototypes == "templates"
    assert not hasattr(retrieval, "prototypes")  # each part parsed by its own task's options
    assert all(a.labels == ["epoch_1"] and a.device for a in recorded.ran)  # checked each
    assert "== alignclip eval retrieval (2/3)" in out


def test_a_failed_part_is_reported_and_the_next_ones_still_run(recorded, run_eval):
    recorded.fail.update(a=EvalError("no classnames.txt"), b=RuntimeError("a crash"))
    code, _, err = run_eval(
        "zeroshot", *recorded.model, "--dataset-name", "a",
        THEN, "retrieval", *recorded.model, "--dataset-name", "b",
        THEN, "zeroshot", *recorded.model, "--dataset-name", "c",
    )  # fmt: skip
    assert code == 1
    assert [a.dataset_name for a in recorded.ran] == ["a", "b", "c"]
    assert "alignclip eval zeroshot: error: no classnames.txt" in err
    assert "RuntimeError: a crash" in err and "alignclip eval retrieval: error: crashed" in err
    assert "alignclip eval: 2 of 3 tasks failed: zeroshot (1), retrieval (2)" in err

    # a lone command as before: its error in one line, a crash raised
    code, _, err = run_eval("zeroshot", *recorded.model, "--dataset-name", "a")
    assert code == 1 and err == "alignclip eval zeroshot: error: no classnames.txt\n"
    with pytest.raises(RuntimeError, match="a crash"):
        run_eval("retrieval", *recorded.model, "--dataset-name", "b")


def test_usage_errors_in_any_part_stop_before_anything_runs(recorded, run_eval, capsys):
    part = ["retrieval", *recorded.model]
    for argv in (
        [*part, THEN],
        [THEN, *part],
        [*part, THEN, THEN, *part],
        [*part, THEN, *part, "--prototypes", "descriptions"],  # a zeroshot option
        [*part, THEN, "nosuchtask"],
    ):
        with pytest.raises(SystemExit) as e:
            run_eval(*argv)
        assert e.value.code == 2, argv
    assert recorded.ran == []
    assert f"{THEN} must stand between two task command lines" in capsys.readouterr().err


def test_no_task_has_an_option_named_then():
    for task in TASKS.values():
        parser = argparse.ArgumentParser()
        task.add_arguments(parser)
        parser.add_argument(THEN)  # argparse refuses an option string a task already has
