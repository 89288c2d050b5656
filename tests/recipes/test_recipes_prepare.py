"""recipes/prepare.py: steps in dependency order, and a step that has no command of its own
(its output is written by a step it requires, as the generator writes descriptions.json)."""

from __future__ import annotations

import sys

import pytest

from alignclip_plugins.recipes import prepare


def _data(root, writes_descriptions: bool) -> dict:
    body = "import pathlib,sys; r=pathlib.Path(sys.argv[1]); r.mkdir(parents=True, exist_ok=True)"
    body += "; (r/'manifest.json').write_text('{}')"
    if writes_descriptions:
        body += "; (r/'descriptions.json').write_text('{}')"
    return {
        "name": "toy",
        "descriptions": f"{root}/descriptions.json",
        "prepare": {
            "train": {
                "creates": f"{root}/manifest.json",
                "run": [sys.executable, "-c", body, root],
            },
            "descriptions": {"requires": ["train"], "creates": f"{root}/descriptions.json"},
        },
    }


def test_a_step_made_by_the_step_it_requires_is_planned_and_checked(tmp_path):
    root = str(tmp_path / "data")
    steps = prepare.steps_for(_data(root, writes_descriptions=True), ["descriptions"])
    assert [s.need for s in steps] == ["train", "descriptions"]
    assert steps[1].requires == ("train",) and not steps[1].run
    # nothing exists yet: neither step is done, and neither is blocked
    assert not any(prepare.is_done(s) for s in steps)
    assert [prepare.problems(s) for s in steps] == [[], []]
    for step in steps:
        prepare.execute(step, sys.executable, log=lambda *_: None)
    assert all(prepare.is_done(s) for s in steps)


def test_a_required_step_that_did_not_write_the_output_is_named(tmp_path):
    root = str(tmp_path / "data")
    steps = prepare.steps_for(_data(root, writes_descriptions=False), ["descriptions"])
    prepare.execute(steps[0], sys.executable, log=lambda *_: None)
    with pytest.raises(prepare.PrepareError, match=r"descriptions\.json was not written.*train"):
        prepare.execute(steps[1], sys.executable, log=lambda *_: None)


def test_a_missing_output_with_no_step_at_all_is_a_problem(tmp_path):
    data = {"name": "toy", "prepare": {"rois": {"creates": str(tmp_path / "rois")}}}
    (step,) = prepare.steps_for(data, ["rois"])
    assert "no step to make it" in prepare.problems(step)[0]
