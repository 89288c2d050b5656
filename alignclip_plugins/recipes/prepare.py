"""Data preparation: making what a method needs (object sidecars, ROI features, ...).

A data config's ``prepare`` maps each need to a step::

    prepare:
      objects:
        requires: [train]                      # steps to run first
        run: [alignclip, objects, parse, ...]  # a command ('alignclip' = this package's CLI)
      rois:
        call: some.module:function             # or a Python function, called with kwargs
        kwargs: {data: ..., out: ...}
        creates: ...                           # done when it exists (default: data.<need>)
        help: how to make it by hand           # when neither run nor call is possible

Every step is skipped when its output exists, and the tools it runs resume by themselves,
so an interrupted preparation continues where it stopped.
"""

from __future__ import annotations

import importlib
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from alignclip_plugins.io.shards import (
    expand_globs,
    expand_patterns,
    has_glob,
    is_pattern,
    split_sources,
)


class PrepareError(RuntimeError):
    """A need that cannot be met; the message says what to do."""


@dataclass
class Step:
    """One preparation step of one dataset."""

    data: str
    need: str
    creates: str | None
    run: list[str] | None = None
    call: str | None = None
    kwargs: dict = field(default_factory=dict)
    help: str | None = None
    # the steps it requires; a step without a command of its own is made by them
    # (e.g. the generator's descriptions, written by the step that writes the shards)
    requires: tuple[str, ...] = ()

    def describe(self) -> str:
        return f"{self.data}: {self.need}"


def _flatten(items) -> list:
    out = []
    for item in items:
        if isinstance(item, (list, tuple)):
            out += _flatten(item)
        else:
            out.append(item)
    return out


def steps_for(data: dict, needs: Sequence[str]) -> list[Step]:
    """The steps meeting ``needs`` (and what they require), dependencies first."""
    prepare = data.get("prepare") or {}
    order: list[str] = []

    def visit(need: str, chain: tuple[str, ...]) -> None:
        if need in order:
            return
        if need in chain:
            raise PrepareError(f"data {data['name']}: prepare steps require each other: {chain}")
        spec = prepare.get(need)
        if spec is None:
            if data.get(need) is None:
                raise PrepareError(
                    f"data {data['name']} has no '{need}' (needed by the method) and no "
                    f"prepare.{need} step"
                )
        else:
            for dep in spec.get("requires") or []:
                visit(dep, (*chain, need))
        order.append(need)

    for need in needs:
        visit(need, ())
    steps = []
    for need in order:
        spec = prepare.get(need) or {}
        creates = spec.get("creates", data.get(need))
        run = spec.get("run")
        steps.append(
            Step(
                data=str(data["name"]),
                need=need,
                creates=None if creates is None else str(creates),
                run=[str(a) if a is not None else None for a in _flatten(run)] if run else None,
                call=spec.get("call"),
                kwargs=dict(spec.get("kwargs") or {}),
                help=spec.get("help"),
                requires=tuple(spec.get("requires") or ()),
            )
        )
    return steps


def is_done(step: Step) -> bool:
    """Whether the step's output exists (a directory must not be empty)."""
    if step.creates is None:
        return False
    target = expand_globs(step.creates)
    if has_glob(target):
        return False  # matches nothing yet
    if is_pattern(target):
        return all(os.path.exists(u) for u in expand_patterns(target)[:1])
    path = Path(target)
    if path.is_dir():
        return any(path.iterdir())
    return path.exists()


def load_callable(spec: str):
    """``package.module:function`` -> the function; ImportError / AttributeError if absent."""
    module_name, _, attr = spec.partition(":")
    if not attr:
        raise PrepareError(f"call {spec!r}: write it as package.module:function")
    return getattr(importlib.import_module(module_name), attr)


def command_line(step: Step, python: str) -> list[str]:
    """The step's command, ``alignclip ...`` run through this Python (no PATH lookup)."""
    argv = list(step.run or [])
    if argv[:1] == ["alignclip"]:
        argv = [python, "-m", "alignclip_plugins", *argv[1:]]
    # a '::'-joined list of shards becomes one argument per part (the tools take several);
    # a glob of existing shards becomes their brace patterns
    out: list[str] = []
    for arg in argv:
        if arg and has_glob(arg):
            arg = expand_globs(arg)
        out += split_sources(arg) if arg and "::" in arg else [arg]
    return out


def problems(step: Step) -> list[str]:
    """Why a step that is not done yet cannot run (empty when it can)."""
    if step.run:
        missing = [i for i, a in enumerate(step.run) if a is None or a == "None"]
        if missing:
            why = step.help or "an argument of its command is not configured"
            return [f"{step.describe()}: {why}"]
        if step.run[0] == "alignclip" and len(step.run) > 1:
            from alignclip_plugins.cli import COMMANDS

            command = step.run[1]
            module = COMMANDS.get(command, (None,))[0]
            try:
                if module is None:
                    raise ImportError(command)
                importlib.import_module(module)
            except ImportError:
                return [
                    f"{step.describe()}: needs `alignclip {command}`, which is not installed "
                    f"in this version of alignclip-plugins"
                ]
        return []
    if step.call:
        try:
            load_callable(step.call)
        except (ImportError, AttributeError):
            return [
                f"{step.describe()}: method needs {step.need} for {step.data}, made by "
                f"{step.call}, which is not installed in this version of alignclip-plugins"
            ]
        return []
    if step.help:
        return [f"{step.describe()} is missing: {step.help}"]
    if step.requires:
        return []  # made by the steps it requires; execute() checks that they did
    return [f"{step.describe()}: {step.creates} is missing and there is no step to make it"]


def execute(step: Step, python: str, log=print) -> None:
    """Run one step (its output is checked afterwards)."""
    issues = problems(step)
    if issues:
        raise PrepareError("; ".join(issues))
    if step.run:
        argv = command_line(step, python)
        log(f"[prepare] {step.describe()}: {' '.join(argv)}")
        proc = subprocess.run(argv)
        if proc.returncode != 0:
            raise PrepareError(
                f"{step.describe()}: `{' '.join(argv)}` failed (exit {proc.returncode}); "
                "rerun the recipe to resume it"
            )
    elif step.call:
        log(f"[prepare] {step.describe()}: {step.call}({step.kwargs})")
        load_callable(step.call)(**step.kwargs)
    if step.creates is not None and not is_done(step):
        if not (step.run or step.call):
            raise PrepareError(
                f"{step.describe()}: {step.creates} was not written by the step(s) it "
                f"requires ({', '.join(step.requires)}); check their output"
            )
        raise PrepareError(f"{step.describe()}: finished but {step.creates} does not exist")
