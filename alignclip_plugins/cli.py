"""The ``alignclip`` command: one subcommand per tool, each a module with ``main(argv)``.

Subcommand modules are imported only when called, so ``alignclip --help`` is instant.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module with a ``main(argv: list[str]) -> int`` function, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("alignclip_plugins.synthetic.cli", "generate the embedded synthetic dataset"),
    "demo": ("alignclip_plugins.demo", "train hard CLIP and each plugin on the embedded data"),
    "plugins": ("alignclip_plugins.host", "list the installed training plugins and their losses"),
    "objects": ("alignclip_plugins.objects.cli", "parse caption objects; vocabulary statistics"),
    "describe": ("alignclip_plugins.descriptions.cli", "LLM visual descriptions of objects"),
    "rois": ("alignclip_plugins.rois.cli", "ROI features and tags: convert detector outputs"),
    "captions": (
        "alignclip_plugins.captions.cli",
        "captioned image folders into multi-caption shards",
    ),
    "eval": ("alignclip_plugins.evaluation.cli", "evaluate a checkpoint on a downstream task"),
    "tables": ("alignclip_plugins.tables.cli", "render the papers' tables from run results"),
}


def _usage() -> str:
    width = max(map(len, COMMANDS))
    lines = ["usage: alignclip COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<{width}}  {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "Run 'alignclip COMMAND --help' for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"alignclip: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
