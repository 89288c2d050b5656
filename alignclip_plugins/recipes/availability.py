"""Is everything a run needs installed? Checked before anything runs.

A recipe row whose method, loss, plugin option or evaluation task is not in this
installation fails with a message naming what is missing; it never runs something else.
"""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Iterable


def method_problems(method: dict) -> list[str]:
    """Missing plugins, losses or plugin options of a method config."""
    from alignclip_plugins.host import PluginError, PluginHost, add_plugin_arguments

    plugins = list(method.get("plugins") or [])
    if not plugins:
        return []
    name = method.get("name", "?")
    try:
        host = PluginHost(plugins)
    except PluginError as e:
        return [f"method {name} needs plugins {', '.join(plugins)}: {e}"]
    except Exception as e:  # a plugin that fails to import for another reason
        return [f"method {name}: loading plugins {', '.join(plugins)} failed: {e}"]
    problems = []
    loss = method.get("loss")
    if loss and loss not in host.losses.names():
        problems.append(
            f"method {name} needs loss {loss!r}, which plugins {', '.join(plugins)} do not "
            f"register (they register: {', '.join(host.losses.names()) or 'none'})"
        )
    parser = argparse.ArgumentParser(add_help=False)
    try:
        add_plugin_arguments(parser, host)
    except argparse.ArgumentError as e:
        return [f"method {name}: plugins {', '.join(plugins)} define clashing options: {e}"]
    known = set(parser._option_string_actions)
    options = {**(method.get("options") or {}), **(method.get("imagenet_options") or {})}
    for option, value in options.items():  # null ones too: a misspelt default is an error
        dashed = option.replace("_", "-")
        flag = f"--no-{dashed}" if value is False else f"--{dashed}"
        if flag not in known:
            problems.append(
                f"method {name}: option {flag} is not defined by plugins {', '.join(plugins)} "
                "(an older or newer plugin version?)"
            )
    return problems


def eval_problems(tasks: Iterable[str]) -> list[str]:
    """Evaluation tasks that ``alignclip eval`` of this installation does not provide."""
    tasks = sorted({t for t in tasks if t})
    if not tasks:
        return []
    try:
        module = importlib.import_module("alignclip_plugins.evaluation.cli")
    except ImportError as e:
        return [
            f"evaluation {', '.join(tasks)} needs `alignclip eval` "
            f"(alignclip_plugins.evaluation.cli), which is not installed: {e}"
        ]
    known = getattr(module, "TASKS", None)
    if known is None:
        return []
    missing = [t for t in tasks if t not in known]
    return [
        f"evaluation task {t!r} is not provided by `alignclip eval` (it has: {', '.join(known)})"
        for t in missing
    ]
