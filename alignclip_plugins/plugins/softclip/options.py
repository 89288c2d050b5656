"""The options of ``--plugins softclip``: the ROI, tag and ROI-encoder options
(``--softclip-rois`` ...), the two losses' (``--softclip-beta`` ...: the fields of
:class:`~alignclip_plugins.losses.config.SoftClipConfig` and ``GuidanceMixConfig``), the
start-up checks, and what the options decide (which features a loss trains).
"""

from __future__ import annotations

import argparse
import logging

from alignclip_plugins.host import require_webdataset
from alignclip_plugins.io.shards import expand_patterns
from alignclip_plugins.losses.config import GuidanceMixConfig, SoftClipConfig
from alignclip_plugins.losses.softclip import GuidanceMixLoss, SoftClipLoss
from alignclip_plugins.plugins.loss_options import (
    LossOption,
    add_loss_options,
    config_from_args,
    dist_kwargs,
    register_loss,
)
from alignclip_plugins.plugins.softclip.roi_encoder import MODES
from alignclip_plugins.rois.check import check_sidecars
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


def make_softclip_loss(args: argparse.Namespace) -> SoftClipLoss:
    """``softclip`` from the parsed options (``--softclip-*``, upstream's distributed ones)."""
    config = config_from_args(SoftClipConfig, SOFTCLIP_OPTIONS, args, SoftClipLoss.loss_name)
    return SoftClipLoss(config, provider=PLUGIN, **dist_kwargs(args))


def make_guidance_mix_loss(args: argparse.Namespace) -> GuidanceMixLoss:
    """``softclip-guidance-mix`` from the parsed options."""
    name = GuidanceMixLoss.loss_name
    config = config_from_args(GuidanceMixConfig, GUIDANCE_MIX_OPTIONS, args, name)
    return GuidanceMixLoss(config, provider=PLUGIN, **dist_kwargs(args))


def register_losses(registry) -> None:
    """Register ``softclip`` and ``softclip-guidance-mix`` in the plugin's registry."""
    for loss, factory, text in (
        (SoftClipLoss, make_softclip_loss,
         "SoftCLIP: soft + relation-enhanced + CLIP loss from ROI/tag self-similarity"),
        (GuidanceMixLoss, make_guidance_mix_loss,
         "SoftCLIP Fig. 4a ablation: γ ROI/tag guidance + (1-γ) image/text guidance"),
    ):  # fmt: skip
        register_loss(registry, loss, factory, help=text)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ROI, tag and ROI-encoder options and the two losses'."""
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


def uses_softclip_loss(args: argparse.Namespace) -> bool:
    """Whether the chosen loss is one of this plugin's."""
    return args.loss in LOSSES


def roi_grad(args: argparse.Namespace) -> bool:
    """Whether the chosen loss sends gradients into the ROI features."""
    if args.softclip_target_grad:
        return True
    if args.loss == GuidanceMixLoss.loss_name:
        return False  # no ROI-tag term
    return args.softclip_roi_tag_weight > 0


def tag_grad(args: argparse.Namespace) -> bool:
    """Whether the tag encoding runs with autograd (into the text tower)."""
    return bool(args.softclip_tag_grad) and (roi_grad(args) or args.softclip_target_grad)


def detector_free(args: argparse.Namespace) -> bool:
    """Whether the loss needs no ROIs nor tags: the guidance mix with γ = 0 (L(I,T) only)."""
    return args.loss == GuidanceMixLoss.loss_name and args.softclip_gamma == 0


def check(args: argparse.Namespace) -> None:
    """Check the options (and the training shards' ROI sidecars); raises ValueError."""
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
    if not uses_softclip_loss(args):
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
