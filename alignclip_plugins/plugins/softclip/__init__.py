"""``--plugins softclip``: SoftCLIP (AAAI 2024) in open_clip's trainer (docs/methods.md,
"SoftCLIP", "Guidance mix", "ROI features and tags", "ROI encoder").

Per step, besides upstream's image/caption forward:

* each sample's ROIs (read from per-shard sidecars, ``--softclip-rois``) go through the ROI
  encoder (``roi_encoder``, attached to the model: optimised, DDP-wrapped, checkpointed)
  to ``roi_features`` r_i;
* its tag sentence ("attr class, attr class, ...") goes through the model's own text tower,
  on the batch's longest tag sentence only (not the full context), to ``tag_features`` a_i;
* the loss (``softclip``, or ``softclip-guidance-mix``) takes r, a and ``roi_valid``:
  samples without ROIs take hard labels in their rows (counted, logged per epoch). Its
  options (``--softclip-beta`` ...) are the fields of
  :class:`~alignclip_plugins.losses.config.SoftClipConfig` and ``GuidanceMixConfig``.

Detector-free: ``--loss softclip-guidance-mix --softclip-gamma 0`` (Fig. 4a's image/text
end point) takes its targets from the image and text self-similarities only; no ROI
sidecar is read and no ROI encoder is attached.

The tag encoding runs without autograd unless ``--softclip-tag-grad`` (the ROI-tag term
then also trains the text tower on tag sentences) or ``--softclip-target-grad`` asks for
it; by default the ROI-tag term trains the ROI encoder toward the text tower's tag
embeddings, and the text tower learns from captions only.

The package: this module holds the hooks and the run's state (:data:`TAG_PAD_ID`,
:data:`ROI_COUNTS` in the run's stash); :mod:`.options` the options, the start-up checks
and the losses built from them; :mod:`.stage` the sample stage reading ROIs and tags;
:mod:`.roi_encoder` the ROI encoder; :mod:`.features` the step's ROI and tag embeddings.
"""

from __future__ import annotations

import logging

import torch

from alignclip_plugins import batching
from alignclip_plugins.epoch_counts import EpochCounts
from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.plugins.softclip import options
from alignclip_plugins.plugins.softclip.features import roi_and_tag_features
from alignclip_plugins.plugins.softclip.options import PLUGIN, detector_free
from alignclip_plugins.plugins.softclip.roi_encoder import build_roi_encoder
from alignclip_plugins.plugins.softclip.stage import PadTokens, RoiSampleStage, pad_id_of
from alignclip_plugins.rois.storage import ROI_DIM
from alignclip_plugins.stash import StashKey

__all__ = ["PLUGIN", "ROI_COUNTS", "TAG_PAD_ID"]

log = logging.getLogger(__name__)

#: the run's stash: the id the tokenizer pads tag sentences with (set with the training stage)
TAG_PAD_ID = StashKey[int]("softclip: tag padding id")
#: the run's stash: samples and samples without ROIs since the last evaluation (device
#: tensors until read)
ROI_COUNTS = StashKey[EpochCounts]("softclip: ROI counts of the epoch")


# the options, their start-up checks and the losses built from them: options.py
octrain_add_arguments = hookimpl(options.add_arguments)
octrain_register_losses = hookimpl(options.register_losses)
octrain_configure = hookimpl(options.check)


@hookimpl
def octrain_attach_modules(model, args):
    if detector_free(args):
        return None
    encoder = build_roi_encoder(model, ROI_DIM, args.softclip_roi_encoder, args.softclip_roi_layers)
    if not options.roi_grad(args):
        # no loss term reaches it: keep it out of the optimiser and of DDP's reduction
        encoder.requires_grad_(False)
        log.info("softclip: no loss term trains the ROI encoder with these options; frozen")
    return {"roi_encoder": encoder}


@hookimpl
def octrain_sample_stages(args, is_train, tokenizer, stash):
    if not is_train or detector_free(args):
        return None
    stash[TAG_PAD_ID] = pad_id_of(tokenizer)
    return [RoiSampleStage(args.softclip_rois, args.softclip_max_rois, tokenizer)]


@hookimpl
def octrain_collate_fields(args, is_train, stash):
    if not is_train or detector_free(args):
        return None
    return {
        "roi_features": batching.stack,
        "roi_mask": batching.stack,
        "tag_text": PadTokens(stash.get(TAG_PAD_ID, 0)),
    }


@hookimpl
def octrain_forward_features(model, batch, args, stash):
    if "roi_mask" not in batch:
        return None
    out = roi_and_tag_features(model, batch, args, pad_id=stash.get(TAG_PAD_ID, 0))
    if torch.is_grad_enabled():  # the training forward (not accumulation's cache pass)
        counts = stash.get(ROI_COUNTS)
        if counts is None:
            counts = stash[ROI_COUNTS] = EpochCounts()
        valid = out["roi_valid"]
        counts.add("samples", valid.numel())
        counts.add("without_rois", (~valid).sum())
    return out


@hookimpl
def octrain_evaluate(epoch, stash):
    counts = stash.get(ROI_COUNTS)
    seen, without = 0, 0
    if counts is not None:
        totals, _ = counts.pop()
        seen, without = totals.get("samples", 0), totals.get("without_rois", 0)
    if not seen:
        return None
    if without:
        log.warning(
            "softclip: %d of %d training samples of epoch %d (rank 0) had no ROIs and were "
            "trained with hard labels",
            without,
            seen,
            epoch,
        )
    return {"softclip_samples_without_rois": without, "softclip_samples": seen}
