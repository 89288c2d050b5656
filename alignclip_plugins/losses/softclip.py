"""SoftCLIP loss modules (METHODS.md §3): ``softclip`` and ``softclip-guidance-mix``.

``SoftClipLoss``: ``L = L̃_soft + λ L̃_re + μ L_CLIP`` (SoftCLIP eq. 16) plus the auxiliary
ROI-tag CLIP term ``w_rt · CLIP(r, a)`` that trains the ROI branch (METHODS §3).
``GuidanceMixLoss``: Fig. 4a, ``γ L(R,A) + (1-γ) L(I,T)``, no CLIP term.

Inputs beyond upstream's: ``roi_features`` and ``tag_features`` (n, D), the L2-normalised
ROI and tag embeddings r_i, a_i, put in the model output by the ``softclip`` plugin, and
optionally ``roi_valid`` (n,) bool: samples without ROIs (False) take the hard label in
their own rows and leave the ROI-tag term (:func:`.functional.mask_rois`).
The ROI-tag term uses the model's ``logit_scale`` (one shared temperature; METHODS §3
does not give the ROI-tag term its own).

Accumulation (``--accum-freq > 1``): supported (``supports_accum=True``) for both. Upstream's
loop concatenates every cached model output along dim 0, ``roi_features`` and
``tag_features`` included (fixed width D), and the loss of the concatenated batch is a
function of those per-sample features and of ``logit_scale`` only (the targets use the
current scale as a constant). Summing the micro-batch gradients therefore gives exactly
the gradient of the loss over the accumulated batch, as for upstream ``ClipLoss``, with or
without ``--softclip-target-grad``.
"""

from __future__ import annotations

import argparse

from torch import Tensor

from .base import SoftLabelLoss, add_options_once, dist_kwargs, register_loss
from .functional import (
    DIVERGENCES,
    SUPERVISION_FORMS,
    SoftConfig,
    guidance_mix_plan,
    mask_rois,
    softclip_plan,
)

LOSS_NAME = "softclip"
GUIDANCE_MIX_LOSS_NAME = "softclip-guidance-mix"
SUPPORTS_ACCUM = True
PLUGIN = "softclip"

__all__ = [
    "GUIDANCE_MIX_LOSS_NAME",
    "LOSS_NAME",
    "GuidanceMixLoss",
    "SoftClipLoss",
    "add_arguments",
    "from_args",
    "guidance_mix_from_args",
    "register",
]


class SoftClipLoss(SoftLabelLoss):
    """SoftCLIP eq. 16 with every ablation switch of the paper.

    ``forward(...)`` → 0-d loss, or with ``output_dict`` the weighted terms
    ``soft_loss``, ``relation_loss`` (λ L̃_re), ``contrastive_loss`` (μ L_CLIP) and
    ``roi_tag_loss`` (w_rt · CLIP(r, a)); absent terms (switched off, zero weight) are
    omitted.
    """

    loss_name = LOSS_NAME

    def __init__(
        self,
        beta: float = 0.3,
        lam: float = 1.0,
        mu: float = 1.0,
        relation_enhanced: bool = True,
        symmetric: bool = True,
        v2l_target: str = "R2R",
        l2v_target: str = "A2A",
        divergence: str = "kl",
        target_grad: bool = False,
        roi_tag_weight: float = 1.0,
        **kwargs,
    ) -> None:
        super().__init__(**kwargs)
        for form in (v2l_target, l2v_target):
            if form not in SUPERVISION_FORMS:
                raise ValueError(
                    f"supervision form must be one of {SUPERVISION_FORMS}, got {form!r}"
                )
        SoftConfig(beta, lam, mu, relation_enhanced, symmetric, divergence, target_grad).validate()
        if roi_tag_weight < 0:
            raise ValueError(f"roi_tag_weight must be >= 0, got {roi_tag_weight}")
        self.options = dict(
            beta=beta,
            lam=lam,
            mu=mu,
            relation_enhanced=relation_enhanced,
            symmetric=symmetric,
            v2l_target=v2l_target,
            l2v_target=l2v_target,
            divergence=divergence,
            target_grad=target_grad,
            roi_tag_weight=roi_tag_weight,
        )

    def _features(self, image_features, text_features, extra) -> list[Tensor]:
        roi = self.require(extra, "roi_features", PLUGIN)
        tag = self.require(extra, "tag_features", PLUGIN)
        if not self._roi_tag_grad():
            roi, tag = roi.detach(), tag.detach()  # gathered without autograd
        valid = extra.get("roi_valid")
        if valid is None:
            return [image_features, text_features, roi, tag]
        return [image_features, text_features, *mask_rois(roi, tag, valid)]

    def _roi_tag_grad(self) -> bool:
        return bool(self.options["target_grad"] or self.options.get("roi_tag_weight", 0))

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **extra,
    ):
        """Features (n, D) per rank; ``roi_features`` / ``tag_features`` from ``extra``.

        ``logit_bias`` cannot change a softmax loss and is ignored, as are unused extras.
        """
        feats = self._features(image_features, text_features, extra)
        terms = self.evaluate(lambda lay: softclip_plan(lay, **self.options), logit_scale, feats)
        terms = {("contrastive" if k == "clip" else k): v for k, v in terms.items()}
        return self.finish(terms, output_dict)

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{opts}, local_loss={self.local_loss}, world_size={self.world_size}"


class GuidanceMixLoss(SoftClipLoss):
    """SoftCLIP Fig. 4a: ``γ (L̃_soft + λ L̃_re)(R,A) + (1-γ) (L̃_soft + λ L̃_re)(I,T)``.

    ``output_dict`` terms: ``soft_ra_loss``, ``relation_ra_loss``, ``soft_it_loss``,
    ``relation_it_loss`` (weighted; zero-weight parts omitted). No CLIP term.
    """

    loss_name = GUIDANCE_MIX_LOSS_NAME

    def __init__(
        self,
        gamma: float = 0.5,
        beta: float = 0.3,
        lam: float = 1.0,
        relation_enhanced: bool = True,
        symmetric: bool = True,
        v2l_target: str = "R2R",
        l2v_target: str = "A2A",
        divergence: str = "kl",
        target_grad: bool = False,
        **kwargs,
    ) -> None:
        super().__init__(
            beta=beta,
            lam=lam,
            mu=0.0,
            relation_enhanced=relation_enhanced,
            symmetric=symmetric,
            v2l_target=v2l_target,
            l2v_target=l2v_target,
            divergence=divergence,
            target_grad=target_grad,
            roi_tag_weight=0.0,
            **kwargs,
        )
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        del self.options["mu"], self.options["roi_tag_weight"]
        self.options["gamma"] = gamma

    def _features(self, image_features, text_features, extra) -> list[Tensor]:
        if self.options["gamma"] == 0:  # L(I,T) only: no ROI or tag input (detector-free)
            return [image_features, text_features]
        return super()._features(image_features, text_features, extra)

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **extra,
    ):
        feats = self._features(image_features, text_features, extra)
        terms = self.evaluate(
            lambda lay: guidance_mix_plan(lay, **self.options), logit_scale, feats
        )
        return self.finish(terms, output_dict)


def _add(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("SoftCLIP losses (METHODS §3)")
    g.add_argument(
        "--softclip-beta",
        type=float,
        default=0.3,
        help="β: weight of the self-similarity in the softened targets (eq. 8-9; default 0.3).",
    )
    g.add_argument(
        "--softclip-lambda",
        type=float,
        default=1.0,
        help="λ: weight of the relation-enhanced loss (eq. 16; default 1).",
    )
    g.add_argument(
        "--softclip-mu",
        type=float,
        default=1.0,
        help="μ: weight of the hard CLIP loss (eq. 16; default 1; softclip only).",
    )
    g.add_argument(
        "--softclip-relation-enhanced",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Add the relation-enhanced (negatives-disentangled) loss (eq. 13-14).",
    )
    g.add_argument(
        "--softclip-symmetric",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="Symmetric KL (eq. 15) instead of KL(target || prediction) (divergence kl).",
    )
    g.add_argument(
        "--softclip-v2l-target",
        choices=SUPERVISION_FORMS,
        default="R2R",
        help="Soft label of the image→text direction (Table 9; default R2R).",
    )
    g.add_argument(
        "--softclip-l2v-target",
        choices=SUPERVISION_FORMS,
        default="A2A",
        help="Soft label of the text→image direction (Table 9; default A2A).",
    )
    g.add_argument(
        "--softclip-divergence",
        choices=DIVERGENCES,
        default="kl",
        help="kl (with --softclip-symmetric) or js (the paper's unstable ablation).",
    )
    g.add_argument(
        "--softclip-gamma",
        type=float,
        default=0.5,
        help="γ of softclip-guidance-mix: γ L(R,A) + (1-γ) L(I,T) (Fig. 4a; default 0.5).",
    )
    g.add_argument(
        "--softclip-target-grad",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="Let gradients flow through the soft targets (default off).",
    )
    g.add_argument(
        "--softclip-roi-tag-weight",
        type=float,
        default=1.0,
        help="w_rt: weight of the ROI-tag CLIP term training the ROI branch (default 1).",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the ``--softclip-*`` options (shared by both losses; added once)."""
    add_options_once(parser, "--softclip-beta", _add)


def _common(args: argparse.Namespace) -> dict:
    return dict(
        beta=getattr(args, "softclip_beta", 0.3),
        lam=getattr(args, "softclip_lambda", 1.0),
        relation_enhanced=getattr(args, "softclip_relation_enhanced", True),
        symmetric=getattr(args, "softclip_symmetric", True),
        v2l_target=getattr(args, "softclip_v2l_target", "R2R"),
        l2v_target=getattr(args, "softclip_l2v_target", "A2A"),
        divergence=getattr(args, "softclip_divergence", "kl"),
        target_grad=getattr(args, "softclip_target_grad", False),
    )


def from_args(args: argparse.Namespace, *, provider: str | None = None) -> SoftClipLoss:
    """``softclip`` from parsed options (``--softclip-*`` and upstream's distributed ones)."""
    return SoftClipLoss(
        mu=getattr(args, "softclip_mu", 1.0),
        roi_tag_weight=getattr(args, "softclip_roi_tag_weight", 1.0),
        provider=provider,
        **_common(args),
        **dist_kwargs(args),
    )


def guidance_mix_from_args(
    args: argparse.Namespace, *, provider: str | None = None
) -> GuidanceMixLoss:
    """``softclip-guidance-mix`` from parsed options."""
    return GuidanceMixLoss(
        gamma=getattr(args, "softclip_gamma", 0.5),
        provider=provider,
        **_common(args),
        **dist_kwargs(args),
    )


def register(registry, plugin: str | None = None) -> None:
    """Register ``softclip`` and ``softclip-guidance-mix`` (one line in a plugin's hook)."""
    register_loss(
        registry,
        LOSS_NAME,
        from_args,
        plugin=plugin,
        add_arguments=add_arguments,
        help="SoftCLIP: soft + relation-enhanced + CLIP loss from ROI/tag self-similarity",
        supports_accum=SUPPORTS_ACCUM,
    )
    register_loss(
        registry,
        GUIDANCE_MIX_LOSS_NAME,
        guidance_mix_from_args,
        plugin=plugin,
        add_arguments=add_arguments,
        help="SoftCLIP Fig. 4a ablation: γ ROI/tag guidance + (1-γ) image/text guidance",
        supports_accum=SUPPORTS_ACCUM,
    )
