"""``--plugins softclip``: SoftCLIP (AAAI 2024) in open_clip's trainer (METHODS.md §3, §6).

Per step, besides upstream's image/caption forward:

* each sample's ROIs (read from per-shard sidecars, ``--softclip-rois``) go through the ROI
  encoder (``roi_encoder``, attached to the model: optimised, DDP-wrapped, checkpointed)
  to ``roi_features`` r_i;
* its tag sentence ("attr class, attr class, ...") goes through the model's own text tower,
  on the batch's longest tag sentence only (not the full context), to ``tag_features`` a_i;
* the loss (``softclip``, or ``softclip-guidance-mix``) takes r, a and ``roi_valid``:
  samples without ROIs take hard labels in their rows (counted, logged per epoch).

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
from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.host import unwrap
from alignclip_plugins.losses import softclip as softclip_losses
from alignclip_plugins.models.roi_encoder import MODES, build_roi_encoder
from alignclip_plugins.models.text_trim import encode_text_trimmed
from alignclip_plugins.rois.shards import expand_shards
from alignclip_plugins.rois.stage import PadTokens, RoiSampleStage, pad_id_of
from alignclip_plugins.rois.storage import (
    DEFAULT_MAX_ROIS,
    MAX_ROIS_LIMIT,
    ROI_DIM,
    RoiDataError,
    check_sidecars,
)

log = logging.getLogger(__name__)

PLUGIN = "softclip"
LOSSES = (softclip_losses.LOSS_NAME, softclip_losses.GUIDANCE_MIX_LOSS_NAME)


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


@hookimpl
def register_losses(registry) -> None:
    softclip_losses.register(registry, plugin=PLUGIN)


def _uses_softclip_loss(args) -> bool:
    return getattr(args, "loss", None) in LOSSES


def _roi_grad(args) -> bool:
    """Whether the chosen loss sends gradients into the ROI features."""
    if getattr(args, "softclip_target_grad", False):
        return True
    if getattr(args, "loss", None) == softclip_losses.GUIDANCE_MIX_LOSS_NAME:
        return False  # no ROI-tag term
    return getattr(args, "softclip_roi_tag_weight", 1.0) > 0


def detector_free(args) -> bool:
    """Whether the loss needs no ROIs nor tags: the guidance mix with γ = 0 (L(I,T) only)."""
    return (
        getattr(args, "loss", None) == softclip_losses.GUIDANCE_MIX_LOSS_NAME
        and getattr(args, "softclip_gamma", 0.5) == 0
    )


def _tag_grad(args) -> bool:
    return bool(getattr(args, "softclip_tag_grad", False)) and (
        _roi_grad(args) or getattr(args, "softclip_target_grad", False)
    )


@hookimpl
def configure(args: argparse.Namespace) -> None:
    if not 1 <= args.softclip_max_rois <= MAX_ROIS_LIMIT:
        raise ValueError(
            f"--softclip-max-rois must be in [1, {MAX_ROIS_LIMIT}], got {args.softclip_max_rois}"
        )
    if args.softclip_roi_layers < 1:
        raise ValueError(f"--softclip-roi-layers must be >= 1, got {args.softclip_roi_layers}")
    if not _uses_softclip_loss(args):
        log.warning(
            "--plugins softclip with --loss %s: ROI and tag features are computed but unused",
            getattr(args, "loss", None),
        )
    if not args.train_data:
        return
    if detector_free(args):
        if args.softclip_rois:
            log.warning("--softclip-rois is unused: --softclip-gamma 0 needs no ROIs")
        return
    if args.dataset_type not in ("webdataset", "auto"):
        raise ValueError(
            f"--plugins softclip reads ROIs alongside webdataset shards; --dataset-type "
            f"{args.dataset_type} is not supported"
        )
    try:
        check_sidecars(args.softclip_rois, expand_shards(args.train_data), ROI_DIM)
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


class _EpochCounts:
    """Samples seen and samples without ROIs since the last evaluation (device tensors)."""

    def __init__(self) -> None:
        self.seen = 0
        self.without: torch.Tensor | None = None  # stays on the device: no sync per step

    def add(self, valid: torch.Tensor) -> None:
        self.seen += valid.numel()
        without = (~valid).sum()
        self.without = without if self.without is None else self.without + without

    def pop(self) -> tuple[int, int]:
        seen, without = self.seen, 0 if self.without is None else int(self.without)
        self.seen, self.without = 0, None
        return seen, without


COUNTS = _EpochCounts()


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
        COUNTS.add(out["roi_valid"])
    return out


@hookimpl
def evaluate(model, data: dict, epoch: int, args: argparse.Namespace, tokenizer):
    seen, without = COUNTS.pop()
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
