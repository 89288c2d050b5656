"""Zero-shot class prototypes from prompt templates, visual descriptions, or both
(docs/methods.md, "AlignCLIP data": "Prototypes").

A class's prototype is the normalised mean of the normalised text embeddings of its
prompts (:func:`alignclip_plugins.evaluation.zeroshot.text_prototypes`); this module only
decides which prompts a class gets:

* ``templates``: every template filled with the class name ("a photo of a {}.");
* ``descriptions``: the class's visual descriptions (``alignclip describe`` output);
* ``both``: the two lists concatenated.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

PROTOTYPE_SOURCES = ("templates", "descriptions", "both")

#: Named template sets; anything else is read as a file, one template with ``{}`` a line.
TEMPLATE_SETS = ("openai", "simple")

Template = str | Callable[[str], str]


def load_templates(spec: str | os.PathLike) -> list[Template]:
    """``openai`` (open_clip's 80 ImageNet templates), ``simple``, or a template file.

    A file holds one template a line with ``{}`` where the class name goes (blank lines
    and ``#`` comments skipped).
    """
    if str(spec) == "openai":
        from open_clip import OPENAI_IMAGENET_TEMPLATES

        return list(OPENAI_IMAGENET_TEMPLATES)
    if str(spec) == "simple":
        from alignclip_plugins.evaluation.zeroshot import SIMPLE_TEMPLATES

        return list(SIMPLE_TEMPLATES)
    path = Path(spec)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as e:
        raise ValueError(
            f"templates {str(spec)!r}: not one of {', '.join(TEMPLATE_SETS)} and not a readable "
            f"file ({e})"
        ) from e
    templates = [line.strip() for line in lines]
    templates = [t for t in templates if t and not t.startswith("#")]
    bad = [t for t in templates if "{}" not in t]
    if bad or not templates:
        raise ValueError(
            f"{path}: every line must be a template with '{{}}' for the class name "
            f"(e.g. 'a photo of a {{}}.'); " + (f"got {bad[0]!r}" if bad else "the file is empty")
        )
    return templates


def fill(template: Template, name: str) -> str:
    """A template (``"a photo of a {}."`` or open_clip's callables) filled with ``name``."""
    return template(name) if callable(template) else template.format(name)


def class_prompts(
    classnames: Sequence[str],
    source: str,
    templates: Sequence[Template] = (),
    descriptions: Mapping[str, Sequence[str]] | None = None,
    *,
    descriptions_path: str | os.PathLike | None = None,
) -> list[list[str]]:
    """The prompts of each class for ``source`` (one of :data:`PROTOTYPE_SOURCES`).

    A class without descriptions is an error in ``descriptions`` and ``both`` mode: the
    message lists the classes and how to write the file (``descriptions_path`` names it).
    """
    if source not in PROTOTYPE_SOURCES:
        raise ValueError(
            f"prototype source must be one of {', '.join(PROTOTYPE_SOURCES)}, got {source!r}"
        )
    use_templates = source in ("templates", "both")
    use_descriptions = source in ("descriptions", "both")
    if use_templates and not templates:
        raise ValueError(f"prototype source {source!r} needs at least one template")
    if use_descriptions:
        where = f" in {descriptions_path}" if descriptions_path else ""
        if descriptions is None:
            raise ValueError(f"prototype source {source!r} needs a descriptions file")
        missing = [c for c in classnames if not descriptions.get(c)]
        if missing:
            shown = ", ".join(repr(c) for c in missing[:5]) + (" ..." if len(missing) > 5 else "")
            raise ValueError(
                f"{len(missing)} of {len(classnames)} classes have no visual description{where} "
                f"({shown}); write them with 'alignclip describe --classnames FILE --out "
                f"DESCRIPTIONS.json' or use --prototypes templates"
            )
    prompts = []
    for name in classnames:
        mine = [fill(t, name) for t in templates] if use_templates else []
        if use_descriptions:
            mine += list(descriptions[name])
        prompts.append(mine)
    return prompts
