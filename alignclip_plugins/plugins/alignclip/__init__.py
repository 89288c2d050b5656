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

The package: this module holds the hooks; :mod:`.options` the options, the files they name
and the start-up checks (and builds the loss); :mod:`.stages` the sample stages (object ids,
text domains); :mod:`.prototypes` the zero-shot class prototypes.
"""

from alignclip_plugins.batching import pad_ids
from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.plugins.alignclip import options, prototypes, stages
from alignclip_plugins.plugins.alignclip.options import PLUGIN

__all__ = ["CAPTION_CHOICE", "ID_FIELDS", "PLUGIN", "REQUIRES"]

ID_FIELDS = ("image_objects", "text_objects")

REQUIRES = ("captions",)  # one caption per sample, and its object set
CAPTION_CHOICE = "random"  # the default --caption-choice: a new caption every epoch


# the options, their start-up checks and the loss built from them: options.py
octrain_add_arguments = hookimpl(options.add_arguments)
octrain_register_losses = hookimpl(options.register_losses)
octrain_configure = hookimpl(options.check)


@hookimpl
def octrain_sample_stages(args, is_train, epoch):
    if is_train and args.train_data:
        return stages.training_stages(args, epoch)
    return None


@hookimpl
def octrain_collate_fields(args, is_train):
    if is_train and args.train_data:
        return {field: pad_ids for field in ID_FIELDS}
    return None


@hookimpl
def octrain_forward_features(batch, args):
    # With --accum-freq > 1 (only with another plugin's loss: object-iou refuses it) upstream
    # concatenates the cached outputs; id tensors of different widths would not concatenate.
    if args.accum_freq > 1 or not all(f in batch for f in ID_FIELDS):
        return None
    return {field: batch[field] for field in ID_FIELDS}


@hookimpl
def octrain_zero_shot_classifier(model, tokenizer, classnames, templates, args, device):
    return prototypes.zero_shot_classifier(model, tokenizer, classnames, templates, args, device)
