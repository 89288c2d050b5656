"""Zero-shot class prototypes of ``--plugins alignclip`` for upstream's ImageNet evaluation
(docs/methods.md, "AlignCLIP data": "Prototypes"): from prompt templates (upstream's own
classifier), visual descriptions of the classes, or both (``--alignclip-zeroshot-prototypes``,
``--alignclip-zeroshot-descriptions``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from alignclip_plugins.evaluation.prototypes import class_prompts
from alignclip_plugins.plugins.alignclip import options

log = logging.getLogger(__name__)


def zeroshot_prompts(
    args: argparse.Namespace, classnames: Sequence[str], templates: Sequence
) -> list[list[str]] | None:
    """Each class's prompts for ``--alignclip-zeroshot-prototypes`` (None: upstream's own)."""
    source = args.alignclip_zeroshot_prototypes
    if source == "templates":
        return None
    descriptions = options.load_descriptions(
        "--alignclip-zeroshot-descriptions", args.alignclip_zeroshot_descriptions
    )
    return class_prompts(
        classnames,
        source,
        templates,
        descriptions,
        descriptions_path=args.alignclip_zeroshot_descriptions,
    )


def zero_shot_classifier(model, tokenizer, classnames, templates, args, device):
    """(D, C) class embeddings from the prompts of :func:`zeroshot_prompts`, or None
    (templates: upstream's own classifier)."""
    prompts = zeroshot_prompts(args, classnames, templates)
    if prompts is None:
        return None
    from alignclip_plugins.evaluation.zeroshot import text_prototypes

    log.info(
        "alignclip zero-shot prototypes from %s: %d classes, %d prompts",
        args.alignclip_zeroshot_prototypes,
        len(prompts),
        sum(map(len, prompts)),
    )
    return text_prototypes(model, tokenizer, prompts, device)
