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
"""

from __future__ import annotations

import argparse
import logging

import torch
import torch.nn.functional as F

from alignclip_plugins import batching
from alignclip_plugins.epoch_counts import EpochCounts
from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.host import require_webdataset, unwrap
from alignclip_plugins.io.shards import expand_patterns
from alignclip_plugins.losses.config import GuidanceMixConfig, SoftClipConfig
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.models.roi_encoder import MODES, build_roi_encoder
from alignclip_plugins.models.text_trim import encode_text_trimmed
from alignclip_plugins.plugins.loss_options import (
    LossOption,
    add_loss_options,
    config_from_args,
    dist_kwargs,
    register_loss,
)
from alignclip_plugins.rois.check import check_sidecars
from alignclip_plugins.rois.stage import PadTokens, RoiSampleStage, pad_id_of
from alignclip_plugins.rois.storage import (
    DEFAULT_MAX_ROIS,
    MAX_ROIS_LIMIT,
    ROI_DIM,
    RoiDataError,
)

log = logging.getLogger(__name__)

PLUGIN = "softclip"
LOSSES = (SoftClipLoss.loss_name, GuidanceMixLoss.loss_name)

#: options of both losses (the fields of SoftTargetConfig)
SHARED_OPTIONS = (
    LossOption("--softclip-beta", "beta", "β: weight of the self-similarity in the softened targets (eq. 8-9)."),
    LossOption("--softclip-lambda", "lam", "λ: weight of the relation-enhanced loss (eq. 16)."),
    LossOption("--softclip-relation-enhanced", "relation_enhanced", "Add the relation-enhanced (negatives-disentangled) loss (eq. 13-14)."),
    LossOption("--softclip-symmetric", "symmetric", "Symmetric KL (eq. 15) instead of KL(target || prediction) (divergence kl)."),
    LossOption("--softclip-v2l-target", "v2l_target", "Soft label of the image→text direction (Table 9)."),
    LossOption("--softclip-l2v-target", "l2v_target", "Soft label of the text→image direction (Table 9)."),
    LossOption("--softclip-divergence", "divergence", "kl (with --softclip-symmetric) or js (the paper's unstable ablation)."),
    LossOption("--softclip-target-grad", "target_grad", "Let gradients flow through the soft targets."),
)  # fmt: skip
SOFTCLIP_OPTIONS = SHARED_OPTIONS + (
    LossOption("--softclip-mu", "mu", "μ: weight of the hard CLIP loss (eq. 16; softclip only)."),
    LossOption("--softclip-roi-tag-weight", "roi_tag_weight", "w_rt: weight of the ROI-tag CLIP term training the ROI branch (softclip only)."),
)  # fmt: skip
GUIDANCE_MIX_OPTIONS = SHARED_OPTIONS + (
    LossOption("--softclip-gamma", "gamma", "γ of softclip-guidance-mix: γ L(R,A) + (1-γ) L(I,T) (Fig. 4a)."),
)  # fmt: skip


def make_softclip_loss(args) -> SoftClipLoss:
    """``softclip`` from the parsed options (``--softclip-*``, upstream's distributed ones)."""
    config = config_from_args(SoftClipConfig, SOFTCLIP_OPTIONS, args, SoftClipLoss.loss_name)
    return SoftClipLoss(config, provider=PLUGIN, **dist_kwargs(args))


def make_guidance_mix_loss(args) -> GuidanceMixLoss:
    """``softclip-guidance-mix`` from the parsed options."""
    name = GuidanceMixLoss.loss_name
    config = config_from_args(GuidanceMixConfig, GUIDANCE_MIX_OPTIONS, args, name)
    return GuidanceMixLoss(config, provider=PLUGIN, **dist_kwargs(args))


@hookimpl
def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("softclip plugin: ROIs, tags and the ROI encoder")
    g.add_argument(
        "--softclip-rois",
        default=None,
        metavar="DIR",
        help="Directory of the ROI sidecars (<shard>.rois/, written by `alignclip rois "
        "convert-vinvl` or `alignclip rois oracle`). Default: next to each shard.",
    )
    g.add_argument(
        "--softclip-max-rois",
        type=int,
        default=DEFAULT_MAX_ROIS,
        metavar="K",
        help=f"ROIs per sample, highest confidence first (default {DEFAULT_MAX_ROIS}).",
    )
    g.add_argument(
        "--softclip-roi-encoder",
        choices=MODES,
        default="mhsa",
        help="ROI aggregation (Table 10): mhsa = the image tower's rear part (default); "
        "mean / max / min of the projected ROI vectors.",
    )
    g.add_argument(
        "--softclip-roi-layers",
        type=int,
        default=1,
        metavar="k",
        help="ViT towers: copies of the last k transformer blocks in the ROI encoder "
        "(default 1; ModifiedResNet towers use their attention pool).",
    )
    g.add_argument(
        "--softclip-tag-grad",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Backpropagate the loss into the text tower through the tag encoding (default "
        "off: tags are encoded without autograd, the ROI-tag term trains the ROI encoder).",
    )
    g = parser.add_argument_group("SoftCLIP losses (docs/methods.md)")
    add_loss_options(g, SoftClipConfig, SOFTCLIP_OPTIONS)
    add_loss_options(g, GuidanceMixConfig, GUIDANCE_MIX_OPTIONS[len(SHARED_OPTIONS) :])


@hookimpl
def register_losses(registry) -> None:
    register_loss(
        registry,
        SoftClipLoss,
        make_softclip_loss,
        plugin=PLUGIN,
        help="SoftCLIP: soft + relation-enhanced + CLIP loss from ROI/tag self-similarity",
    )
    register_loss(
        registry,
        GuidanceMixLoss,
        make_guidance_mix_loss,
        plugin=PLUGIN,
        help="SoftCLIP Fig. 4a ablation: γ ROI/tag guidance + (1-γ) image/text guidance",
    )


def _uses_softclip_loss(args) -> bool:
    return args.loss in LOSSES


def _roi_grad(args) -> bool:
    """Whether the chosen loss sends gradients into the ROI features."""
    if args.softclip_target_grad:
        return True
    if args.loss == GuidanceMixLoss.loss_name:
        return False  # no ROI-tag term
    return args.softclip_roi_tag_weight > 0


def detector_free(args) -> bool:
    """Whether the loss needs no ROIs nor tags: the guidance mix with γ = 0 (L(I,T) only)."""
    return args.loss == GuidanceMixLoss.loss_name and args.softclip_gamma == 0


def _tag_grad(args) -> bool:
    return bool(args.softclip_tag_grad) and (_roi_grad(args) or args.softclip_target_grad)


@hookimpl
def configure(args: argparse.Namespace) -> None:
    if args.loss == SoftClipLoss.loss_name:  # options that cannot go together
        config_from_args(SoftClipConfig, SOFTCLIP_OPTIONS, args, args.loss)
    elif args.loss == GuidanceMixLoss.loss_name:
        config_from_args(GuidanceMixConfig, GUIDANCE_MIX_OPTIONS, args, args.loss)
    if not 1 <= args.softclip_max_rois <= MAX_ROIS_LIMIT:
        raise ValueError(
            f"--softclip-max-rois must be in [1, {MAX_ROIS_LIMIT}], got {args.softclip_max_rois}"
        )
    if args.softclip_roi_layers < 1:
        raise ValueError(f"--softclip-roi-layers must be >= 1, got {args.softclip_roi_layers}")
    if not _uses_softclip_loss(args):
        log.warning(
            "--plugins softclip with --loss %s: ROI and tag features are computed but unused",
            args.loss,
        )
    if detector_free(args):  # reads no sample fields: any dataset type
        if args.softclip_rois:
            log.warning("--softclip-rois is unused: --softclip-gamma 0 needs no ROIs")
        return
    require_webdataset(args, PLUGIN, "ROI features and tags")
    if not args.train_data:
        return
    try:
        check_sidecars(args.softclip_rois, expand_patterns(args.train_data), ROI_DIM)
    except RoiDataError as exc:
        raise ValueError(f"--plugins softclip: {exc}") from None


@hookimpl
def attach_modules(model, args: argparse.Namespace):
    if detector_free(args):
        return None
    encoder = build_roi_encoder(model, ROI_DIM, args.softclip_roi_encoder, args.softclip_roi_layers)
    if not _roi_grad(args):
        # no loss term reaches it: keep it out of the optimiser and of DDP's reduction
        encoder.requires_grad_(False)
        log.info("softclip: no loss term trains the ROI encoder with these options; frozen")
    return {"roi_encoder": encoder}


@hookimpl
def sample_stages(args: argparse.Namespace, is_train: bool, tokenizer):
    if not is_train or detector_free(args):
        return None
    args.softclip_tag_pad_id = pad_id_of(tokenizer)
    return [RoiSampleStage(args.softclip_rois, args.softclip_max_rois, tokenizer)]


@hookimpl
def collate_fields(args: argparse.Namespace, is_train: bool):
    if not is_train or detector_free(args):
        return None
    return {
        "roi_features": batching.stack,
        "roi_mask": batching.stack,
        "tag_text": PadTokens(getattr(args, "softclip_tag_pad_id", 0)),
    }


#: samples and samples without ROIs since the last evaluation (device tensors until read)
COUNTS = EpochCounts()


def roi_and_tag_features(model, batch: dict, args: argparse.Namespace) -> dict:
    """``roi_features``, ``tag_features`` (L2-normalised, (B, D)) and ``roi_valid`` (B,)."""
    clip = unwrap(model)
    mask = batch["roi_mask"]
    grad = torch.is_grad_enabled()
    with torch.set_grad_enabled(grad and _roi_grad(args)):
        roi = F.normalize(clip.roi_encoder(batch["roi_features"], mask), dim=-1)
    with torch.set_grad_enabled(grad and _tag_grad(args)):
        pad = getattr(args, "softclip_tag_pad_id", 0)
        tag = encode_text_trimmed(clip, batch["tag_text"], normalize=True, pad_id=pad)
    return {"roi_features": roi, "tag_features": tag, "roi_valid": mask.any(1)}


@hookimpl
def forward_features(model, batch: dict, model_out: dict, args: argparse.Namespace):
    if "roi_mask" not in batch:
        return None
    out = roi_and_tag_features(model, batch, args)
    if torch.is_grad_enabled():  # the training forward (not accumulation's cache pass)
        valid = out["roi_valid"]
        COUNTS.add("samples", valid.numel())
        COUNTS.add("without_rois", (~valid).sum())
    return out


@hookimpl
def evaluate(model, data: dict, epoch: int, args: argparse.Namespace, tokenizer):
    counts, _ = COUNTS.pop()
    seen, without = counts.get("samples", 0), counts.get("without_rois", 0)
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
