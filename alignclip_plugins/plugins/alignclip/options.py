"""The options of ``--plugins alignclip``: ``--alignclip-*`` and the Object-IoU loss's
``--oiou-beta``; their definitions, the files they name, and the start-up checks.

Every check runs at start-up (``octrain_configure``), before a model is built, and a bad
value stops the run with a message naming the option or file and what to do. See
docs/alignclip.md for the pipeline and every option.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

from alignclip_plugins.evaluation.prototypes import (
    PROTOTYPE_SOURCES,
    class_prompts,
    fill,
    load_templates,
)
from alignclip_plugins.host import require_webdataset
from alignclip_plugins.io.shards import expand_patterns, split_sources
from alignclip_plugins.losses.config import ObjectIouConfig
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.plugins.loss_options import (
    LossOption,
    add_loss_options,
    config_from_args,
    dist_kwargs,
    register_loss,
)

log = logging.getLogger(__name__)

PLUGIN = "alignclip"
OIOU_BETA = LossOption(
    "--oiou-beta", "beta", "β: weight of the object-IoU similarity in the targets; 0 = CLIP."
)
LOSS_OPTIONS = (OIOU_BETA,)

DEFAULT_DOMAINS = "1,0,0"
DEFAULT_RHO = 0.5
DEFAULT_TEMPLATES = "openai"
DEFAULT_ZEROSHOT_PROTOTYPES = "templates"
_CHECK_RECORDS = 1000  # sidecar records read at start-up to check they match the vocabulary


def parse_probabilities(text: str) -> tuple[float, float, float]:
    """``"P_CAPTION,P_PROMPT,P_DESCRIPTION"`` -> three probabilities (>= 0, summing to 1)."""
    parts = [p.strip() for p in str(text).split(",")]
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"expected three comma-separated probabilities P_CAPTION,P_PROMPT,P_DESCRIPTION "
            f"(e.g. 1,0,0 or 0.5,0.25,0.25), got {text!r}"
        )
    if min(values) < 0 or abs(sum(values) - 1.0) > 1e-3:
        raise ValueError(f"probabilities must be >= 0 and sum to 1, got {text!r}")
    total = sum(values)
    return tuple(v / total for v in values)  # type: ignore[return-value]


def _probabilities(text: str) -> tuple[float, float, float]:
    try:
        return parse_probabilities(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def make_loss(args: argparse.Namespace) -> ObjectIouLoss:
    """``object-iou`` from the parsed options (``--oiou-beta``, upstream's distributed ones)."""
    config = config_from_args(ObjectIouConfig, LOSS_OPTIONS, args, ObjectIouLoss.loss_name)
    return ObjectIouLoss(config, provider=PLUGIN, **dist_kwargs(args))


def register_losses(registry) -> None:
    """Register ``object-iou`` (built by :func:`make_loss`) in the plugin's registry."""
    text = "AlignCLIP Object-IoU soft targets from caption object sets (--oiou-beta)"
    register_loss(registry, ObjectIouLoss, make_loss, help=text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--alignclip-*`` options and the Object-IoU loss's."""
    g = parser.add_argument_group("AlignCLIP (--plugins alignclip; docs/alignclip.md)")
    g.add_argument(
        "--alignclip-objects",
        default=None,
        metavar="PATH[,PATH...]",
        help="object-set sidecars of the training shards ('alignclip objects parse' output "
        "directories or *.objects.jsonl files); required with --train-data",
    )
    g.add_argument(
        "--alignclip-vocabulary",
        default=None,
        metavar="FILE",
        help="object vocabulary from 'alignclip objects stats': object ids (its order) and "
        "frequencies; objects outside it are dropped. Required with --train-data",
    )
    g.add_argument(
        "--alignclip-allow-missing-sidecars",
        action="store_true",
        help="train samples of shards without a sidecar with empty object sets instead of "
        "stopping at start-up",
    )
    g.add_argument(
        "--alignclip-domains",
        type=_probabilities,
        default=parse_probabilities(DEFAULT_DOMAINS),
        metavar="P_CAPTION,P_PROMPT,P_DESCRIPTION",
        help="probabilities of the three text domains per sample: caption, prompt template "
        f"with one of its objects, visual description of one of its objects (default "
        f"{DEFAULT_DOMAINS}: captions only; AlignCLIP: e.g. 0.5,0.25,0.25)",
    )
    g.add_argument(
        "--alignclip-rho",
        type=float,
        default=DEFAULT_RHO,
        help="tail weighting: a sample's object for a prompt or description is drawn with "
        f"weight freq^-rho (0 = uniform; default {DEFAULT_RHO})",
    )
    g.add_argument(
        "--alignclip-templates",
        default=DEFAULT_TEMPLATES,
        metavar="openai|simple|FILE",
        help="training prompt templates: open_clip's 80 ImageNet templates, 4 simple ones, or "
        f"a file with one template with '{{}}' a line (default {DEFAULT_TEMPLATES})",
    )
    g.add_argument(
        "--alignclip-descriptions",
        default=None,
        metavar="FILE",
        help="visual descriptions of the vocabulary's objects ('alignclip describe' output); "
        "required when P_DESCRIPTION > 0",
    )
    g.add_argument(
        "--alignclip-zeroshot-prototypes",
        choices=PROTOTYPE_SOURCES,
        default=DEFAULT_ZEROSHOT_PROTOTYPES,
        help="class prototypes of upstream's ImageNet zero-shot eval: prompt templates "
        "(upstream's own), visual descriptions, or both (default "
        f"{DEFAULT_ZEROSHOT_PROTOTYPES})",
    )
    g.add_argument(
        "--alignclip-zeroshot-descriptions",
        default=None,
        metavar="FILE",
        help="visual descriptions of the zero-shot classes ('alignclip describe --classnames' "
        "output), for --alignclip-zeroshot-prototypes descriptions|both",
    )
    group = parser.add_argument_group("Object-IoU loss (docs/methods.md)")
    add_loss_options(group, ObjectIouConfig, LOSS_OPTIONS)


# ---- start-up checks -------------------------------------------------------------------


def training_urls(args: argparse.Namespace) -> list[str]:
    """The training shard URLs (brace patterns and ``::`` sources expanded)."""
    return expand_patterns(args.train_data)


def training_templates(args: argparse.Namespace) -> list[str]:
    """``--alignclip-templates`` as format strings with ``{}``."""
    try:
        templates = load_templates(args.alignclip_templates)
    except ValueError as e:
        raise ValueError(f"--alignclip-templates: {e}") from None
    return [fill(t, "{}") if callable(t) else t for t in templates]


def load_vocabulary(args: argparse.Namespace):
    """The :class:`~alignclip_plugins.objects.stats.ObjectVocabulary` of the option."""
    from alignclip_plugins.objects.stats import load_object_vocabulary

    try:
        vocabulary = load_object_vocabulary(args.alignclip_vocabulary)
    except ValueError as e:
        raise ValueError(f"--alignclip-vocabulary: {e}") from None
    if not vocabulary.counts:
        raise ValueError(f"--alignclip-vocabulary {args.alignclip_vocabulary} holds no objects")
    return vocabulary


def load_descriptions(option: str, path) -> dict[str, list[str]]:
    """The descriptions file ``path`` given to ``option``; errors name the option."""
    from alignclip_plugins.descriptions.generate import load_descriptions

    try:
        return load_descriptions(path)
    except ValueError as e:
        raise ValueError(f"{option}: {e}") from None


def training_descriptions(args: argparse.Namespace, names: Sequence[str]) -> dict[int, list[str]]:
    """Descriptions by object id (only the vocabulary objects that have some)."""
    if args.alignclip_descriptions is None:
        return {}
    texts = load_descriptions("--alignclip-descriptions", args.alignclip_descriptions)
    return {i: texts[name] for i, name in enumerate(names) if texts.get(name)}


def _check_training(args: argparse.Namespace) -> None:
    from alignclip_plugins.objects.sample_objects import SidecarIndex, missing_sidecars_message

    if not args.alignclip_objects:
        raise ValueError(
            "--plugins alignclip needs --alignclip-objects DIR: the object sets of the training "
            f"captions, written by 'alignclip objects parse {args.train_data!r} --out DIR'"
        )
    if not args.alignclip_vocabulary:
        raise ValueError(
            "--plugins alignclip needs --alignclip-vocabulary FILE: the object vocabulary, "
            "written by 'alignclip objects stats SIDECAR_DIR --out FILE'"
        )
    vocabulary = load_vocabulary(args)
    try:
        index = SidecarIndex.from_option(args.alignclip_objects)
    except ValueError as e:
        raise ValueError(f"--alignclip-objects: {e}") from None
    urls = training_urls(args)
    missing = index.missing(urls)
    if missing and not args.alignclip_allow_missing_sidecars:
        raise ValueError(
            "--alignclip-objects: "
            + missing_sidecars_message(missing, index.locations, split_sources(args.train_data))
        )
    present = [(u, index.path_for(u)) for u in urls if u not in missing]
    if present:
        _check_sidecar_matches_vocabulary(present[0][1], vocabulary, args.alignclip_vocabulary)
        local = next(((u, p) for u, p in present if os.path.isfile(u)), None)
        if local is not None:
            from alignclip_plugins.objects.sample_objects import check_caption_counts

            try:
                check_caption_counts(*local, split_sources(args.train_data))
            except (OSError, ValueError) as e:
                raise ValueError(f"--alignclip-objects: {e}") from None
    p_caption, p_prompt, p_description = args.alignclip_domains
    if p_description > 0:
        if not args.alignclip_descriptions:
            raise ValueError(
                f"--alignclip-domains {p_caption:g},{p_prompt:g},{p_description:g} draws visual "
                "descriptions: give --alignclip-descriptions FILE (written by 'alignclip "
                "describe --vocabulary VOCABULARY --out FILE')"
            )
        described = training_descriptions(args, vocabulary.names)
        if not described:
            raise ValueError(
                f"--alignclip-descriptions {args.alignclip_descriptions} describes none of the "
                f"{len(vocabulary.names)} objects of --alignclip-vocabulary "
                f"{args.alignclip_vocabulary} (e.g. {vocabulary.names[:3]}); describe them with "
                "'alignclip describe --vocabulary VOCABULARY --out FILE'"
            )
        if len(described) < len(vocabulary.names):
            log.warning(
                "--alignclip-descriptions describes %d of %d vocabulary objects; a description "
                "drawn for a sample whose objects have none becomes a prompt",
                len(described),
                len(vocabulary.names),
            )


def _check_sidecar_matches_vocabulary(path: Path, vocabulary, vocabulary_path) -> None:
    from alignclip_plugins.objects.sidecar import iter_sidecar

    try:
        seen: set[str] = set()
        for n, (_, objects) in enumerate(iter_sidecar(path)):
            seen.update(objects)
            if n >= _CHECK_RECORDS:
                break
    except (OSError, ValueError) as e:
        raise ValueError(f"--alignclip-objects: {e}") from None
    if seen and not seen & vocabulary.counts.keys():
        raise ValueError(
            f"none of the objects in {path} (e.g. {sorted(seen)[:3]}) is in "
            f"--alignclip-vocabulary {vocabulary_path}: the sidecars and the vocabulary come "
            "from different parses; rebuild it with 'alignclip objects stats SIDECAR_DIR --out "
            "FILE'"
        )


def _check_zeroshot(args: argparse.Namespace) -> None:
    source = args.alignclip_zeroshot_prototypes
    if source == "templates":
        if args.alignclip_zeroshot_descriptions:
            log.warning(
                "--alignclip-zeroshot-descriptions is unused with "
                "--alignclip-zeroshot-prototypes templates"
            )
        return
    if not args.alignclip_zeroshot_descriptions:
        raise ValueError(
            f"--alignclip-zeroshot-prototypes {source} needs --alignclip-zeroshot-descriptions "
            "FILE: descriptions of the zero-shot classes, written by 'alignclip describe "
            "--classnames CLASSNAMES --out FILE'"
        )
    descriptions = load_descriptions(
        "--alignclip-zeroshot-descriptions", args.alignclip_zeroshot_descriptions
    )
    if getattr(args, "imagenet_val", None) or getattr(args, "imagenet_v2", None):
        from open_clip import IMAGENET_CLASSNAMES, OPENAI_IMAGENET_TEMPLATES

        try:
            class_prompts(
                IMAGENET_CLASSNAMES,
                source,
                OPENAI_IMAGENET_TEMPLATES,
                descriptions,
                descriptions_path=args.alignclip_zeroshot_descriptions,
            )
        except ValueError as e:
            raise ValueError(f"--alignclip-zeroshot-descriptions: {e}") from None


def check(args: argparse.Namespace) -> None:
    """Check every ``--alignclip-*`` option (and its files); raises ValueError."""
    rho = args.alignclip_rho
    if not (rho >= 0 and rho != float("inf")):
        raise ValueError(f"--alignclip-rho must be a finite number >= 0, got {rho}")
    training_templates(args)
    if args.alignclip_descriptions and not os.path.isfile(args.alignclip_descriptions):
        raise ValueError(f"--alignclip-descriptions {args.alignclip_descriptions} does not exist")
    require_webdataset(args, PLUGIN, "caption object sets")
    if args.train_data:
        _check_training(args)
    _check_zeroshot(args)
    if args.accum_freq > 1:
        log.warning(
            "--accum-freq %d: the object ids are not passed to the loss (upstream concatenates "
            "accumulated model outputs, and id tensors differ in width per batch); the "
            "object-iou loss refuses --accum-freq > 1",
            args.accum_freq,
        )
