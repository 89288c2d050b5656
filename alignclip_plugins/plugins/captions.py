"""``--plugins captions``: one caption per image per epoch from multi-caption shards.

For shards whose ``txt`` member holds several captions, one a line (Flickr8k, Flickr30k,
COCO), ``--caption-choice`` picks what the text encoder sees (see
:mod:`alignclip_plugins.captions.choice`): ``all`` lines as one text (upstream's
behaviour), the ``first`` caption, or a ``random`` one per epoch drawn by a keyed hash of
(``--seed``, epoch, sample key), the same after ``--resume``. Samples with no non-empty
caption line are skipped and counted in the log, per epoch.

Usable alone for plain CLIP (``--plugins captions --caption-choice random``) and with any
plugin. Plugins that need one caption per sample list it in their ``REQUIRES``; a plugin
module may set ``CAPTION_CHOICE = "random"`` to make that the default when
``--caption-choice`` is not given (the first such plugin in ``--plugins`` order wins).
Its stage runs before every other plugin's (``tryfirst``), so they see the chosen caption.
It applies to the training data; ``--val-data`` is read as upstream reads it (every line as
one text), and ``alignclip eval retrieval`` scores every caption (docs/evaluation.md).
"""

from __future__ import annotations

import argparse
import logging

from alignclip_plugins.captions.choice import (
    CHOICES,
    DEFAULT_CHOICE,
    RANDOM,
    CaptionChoiceStage,
)
from alignclip_plugins.hookspecs import hookimpl

log = logging.getLogger(__name__)

PLUGIN = "captions"


@hookimpl
def octrain_add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("captions plugin: several captions per image (one a line)")
    g.add_argument(
        "--caption-choice",
        choices=CHOICES,
        default=None,
        help="what a multi-caption sample's text is in an epoch: all lines as one text "
        "(upstream's behaviour), the first caption, or a random one per epoch (a keyed hash of "
        "seed, epoch and sample key). Default: what the active plugins ask for "
        f"(alignclip: {RANDOM}), else {DEFAULT_CHOICE}. Training data only (--val-data is "
        "read as upstream does).",
    )


def requested_choice(args: argparse.Namespace) -> tuple[str, str]:
    """``(choice, who asked)``: ``--caption-choice``, else the first active plugin's
    ``CAPTION_CHOICE``, else the default."""
    if getattr(args, "caption_choice", None):
        return args.caption_choice, "--caption-choice"
    from alignclip_plugins.host import host_for

    host = host_for(args)
    for name in host.names if host is not None else ():
        wanted = getattr(host.pm.get_plugin(name), "CAPTION_CHOICE", None)
        if wanted is not None:
            if wanted not in CHOICES:
                raise ValueError(
                    f"plugin {name!r} asks for caption choice {wanted!r}; known: {CHOICES}"
                )
            return wanted, f"plugin {name}"
    return DEFAULT_CHOICE, "default"


@hookimpl
def octrain_configure(args: argparse.Namespace) -> None:
    choice, source = requested_choice(args)
    args.caption_choice = choice
    log.info("captions: one caption per sample: %s (%s)", choice, source)


@hookimpl(tryfirst=True)
def octrain_sample_stages(args: argparse.Namespace, is_train: bool, epoch):
    if not is_train:
        return None  # --val-data stays upstream's; `alignclip eval retrieval` scores captions
    return [CaptionChoiceStage(args.caption_choice or DEFAULT_CHOICE, seed=args.seed, epoch=epoch)]
