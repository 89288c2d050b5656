"""``alignclip eval``: the command, its model options and their errors."""

from alignclip_plugins.cli import main as alignclip
from alignclip_plugins.evaluation.cli import TASKS
from alignclip_plugins.evaluation.results import read_result


def test_help_lists_every_task(capsys):
    try:
        alignclip(["eval", "--help"])
    except SystemExit as e:
        assert e.code == 0
    out = capsys.readouterr().out
    assert all(task in out for task in TASKS)


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
