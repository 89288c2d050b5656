"""``--plugins alignclip``: AlignCLIP (docs/methods.md, "Object-IoU loss", "AlignCLIP data";
docs/alignclip.md).

- loss ``object-iou`` (``--oiou-beta``): soft targets from the IoU of caption object sets;
- a sample stage attaching each sample's object ids from its shard's sidecar
  (``--alignclip-objects``, ``--alignclip-vocabulary``);
- the three text domains per sample: caption, prompt template, visual description
  (``--alignclip-domains``, ``--alignclip-rho``, ``--alignclip-templates``,
  ``--alignclip-descriptions``), which also gives each text's object set;
- ``image_objects`` / ``text_objects`` collated (padded with -1) and passed to the loss;
- class prototypes for upstream's ImageNet zero-shot eval from templates, descriptions or
  both (``--alignclip-zeroshot-prototypes``, ``--alignclip-zeroshot-descriptions``).

It requires the ``captions`` plugin: on multi-caption shards (one caption a line) each
sample shows one caption per epoch, ``random`` by default (``--caption-choice``), and its
object set O_i is that caption's (the sidecars hold one set per caption line).
"""

import logging

from alignclip_plugins import alignclip_options
from alignclip_plugins.batching import pad_ids
from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.losses.config import ObjectIouConfig
from alignclip_plugins.losses.object_iou import ObjectIouLoss
from alignclip_plugins.plugins.loss_options import (
    LossOption,
    add_loss_options,
    config_from_args,
    dist_kwargs,
    register_loss,
)

PLUGIN = "alignclip"
ID_FIELDS = ("image_objects", "text_objects")
OIOU_BETA = LossOption(
    "--oiou-beta", "beta", "β: weight of the object-IoU similarity in the targets; 0 = CLIP."
)
LOSS_OPTIONS = (OIOU_BETA,)

REQUIRES = ("captions",)  # one caption per sample, and its object set
CAPTION_CHOICE = "random"  # the default --caption-choice: a new caption every epoch

log = logging.getLogger(__name__)


def make_loss(args) -> ObjectIouLoss:
    """``object-iou`` from the parsed options (``--oiou-beta``, upstream's distributed ones)."""
    config = config_from_args(ObjectIouConfig, LOSS_OPTIONS, args, ObjectIouLoss.loss_name)
    return ObjectIouLoss(config, provider=PLUGIN, **dist_kwargs(args))


@hookimpl
def add_arguments(parser):
    alignclip_options.add_arguments(parser)
    group = parser.add_argument_group("Object-IoU loss (docs/methods.md)")
    add_loss_options(group, ObjectIouConfig, LOSS_OPTIONS)


@hookimpl
def register_losses(registry):
    register_loss(
        registry,
        ObjectIouLoss,
        make_loss,
        plugin=PLUGIN,
        help="AlignCLIP Object-IoU soft targets from caption object sets (--oiou-beta)",
    )


@hookimpl
def configure(args):
    alignclip_options.check(args)


@hookimpl
def sample_stages(args, is_train, tokenizer, epoch):
    if is_train and args.train_data:
        return alignclip_options.sample_stages(args, epoch)
    return None


@hookimpl
def collate_fields(args, is_train):
    if is_train and args.train_data:
        return {field: pad_ids for field in ID_FIELDS}
    return None


@hookimpl
def forward_features(model, batch, model_out, args):
    # With --accum-freq > 1 (only with another plugin's loss: object-iou refuses it) upstream
    # concatenates the cached outputs; id tensors of different widths would not concatenate.
    if args.accum_freq > 1 or not all(f in batch for f in ID_FIELDS):
        return None
    return {field: batch[field] for field in ID_FIELDS}


@hookimpl
def zero_shot_classifier(model, tokenizer, classnames, templates, args, device):
    prompts = alignclip_options.zeroshot_prompts(args, classnames, templates)
    if prompts is None:
        return None  # templates: upstream's own classifier
    from alignclip_plugins.evaluation.zeroshot import text_prototypes

    log.info(
        "alignclip zero-shot prototypes from %s: %d classes, %d prompts",
        args.alignclip_zeroshot_prototypes,
        len(prompts),
        sum(map(len, prompts)),
    )
    return text_prototypes(model, tokenizer, prompts, device)
