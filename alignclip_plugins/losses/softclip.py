"""SoftCLIP loss modules (docs/methods.md, "SoftCLIP", "Guidance mix"): ``softclip`` and
``softclip-guidance-mix``.

``SoftClipLoss``: ``L = L̃_soft + λ L̃_re + μ L_CLIP`` (SoftCLIP eq. 16) plus the ROI-tag
CLIP term ``w_rt · CLIP(r, a)`` that trains the ROI branch (:class:`.config.SoftClipConfig`
says why it is on by default). ``GuidanceMixLoss``: Fig. 4a, ``γ L(R,A) + (1-γ) L(I,T)``,
no CLIP term.

Inputs beyond upstream's: ``roi_features`` and ``tag_features`` (n, D), the L2-normalised
ROI and tag embeddings r_i, a_i, put in the model output by the ``softclip`` plugin, and
optionally ``roi_valid`` (n,) bool: samples without ROIs (False) take the hard label in
their own rows and leave the ROI-tag term (:func:`.functional.mask_rois`).
The ROI-tag term uses the model's ``logit_scale`` (one shared temperature).

Accumulation (``--accum-freq > 1``): supported for both. Upstream's loop concatenates
every cached model output along dim 0, ``roi_features`` and ``tag_features`` included
(fixed width D), and the loss of the concatenated batch is a function of those
per-sample features and of ``logit_scale`` only (the targets use the current scale as a
constant). Summing the micro-batch gradients therefore gives exactly the gradient of the
loss over the accumulated batch, as for upstream ``ClipLoss``, with or without target
gradients.
"""

from __future__ import annotations

from torch import Tensor

from ._plans import IMAGE, ROI, TAG, TEXT, VALID, guidance_mix_plan, softclip_plan
from .base import SoftLabelLoss
from .config import GuidanceMixConfig, SoftClipConfig
from .functional import mask_rois

__all__ = ["GuidanceMixLoss", "SoftClipLoss"]


class _SoftClipFamily(SoftLabelLoss):
    """SoftCLIP's inputs and evaluation, shared by its two losses."""

    providers = {"roi_features": "softclip", "tag_features": "softclip"}
    supports_accum = True

    def _plan(self, layout):  # pragma: no cover - abstract
        raise NotImplementedError

    def _roi_tag_grad(self) -> bool:
        """Whether any term differentiates the ROI / tag features."""
        return self.config.target_grad

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        roi = self.require(extra, "roi_features")
        tag = self.require(extra, "tag_features")
        if not self._roi_tag_grad():
            roi, tag = roi.detach(), tag.detach()  # gathered without autograd
        inputs = {IMAGE: image_features, TEXT: text_features, ROI: roi, TAG: tag}
        valid = extra.get("roi_valid")
        if valid is not None:
            inputs[ROI], inputs[TAG], inputs[VALID] = mask_rois(roi, tag, valid)
        return self.evaluate(self._plan, logit_scale, inputs)


class SoftClipLoss(_SoftClipFamily):
    """SoftCLIP eq. 16 plus the ROI-tag term, with every ablation switch of the paper.

    Options :class:`.config.SoftClipConfig`. ``output_dict`` terms: ``soft_loss``,
    ``relation_loss`` (λ L̃_re), ``contrastive_loss`` (μ L_CLIP) and ``roi_tag_loss``
    (w_rt · CLIP(r, a)); absent terms (switched off, zero weight) are omitted.
    """

    loss_name = "softclip"
    config_class = SoftClipConfig

    def _plan(self, layout):
        return softclip_plan(layout, self.config)

    def _roi_tag_grad(self) -> bool:
        return self.config.target_grad or self.config.roi_tag_weight > 0

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        terms = super().terms(image_features, text_features, logit_scale, extra)
        return {("contrastive" if k == "clip" else k): v for k, v in terms.items()}


class GuidanceMixLoss(_SoftClipFamily):
    """SoftCLIP Fig. 4a: ``γ (L̃_soft + λ L̃_re)(R,A) + (1-γ) (L̃_soft + λ L̃_re)(I,T)``.

    Options :class:`.config.GuidanceMixConfig`. ``output_dict`` terms: ``soft_ra_loss``,
    ``relation_ra_loss``, ``soft_it_loss``, ``relation_it_loss`` (weighted; zero-weight
    parts omitted). No CLIP term.
    """

    loss_name = "softclip-guidance-mix"
    config_class = GuidanceMixConfig

    def _plan(self, layout):
        return guidance_mix_plan(layout, self.config)

    def terms(self, image_features, text_features, logit_scale, extra) -> dict[str, Tensor]:
        if self.config.gamma == 0:  # L(I,T) only: no ROI or tag input (detector-free)
            inputs = {IMAGE: image_features, TEXT: text_features}
            return self.evaluate(self._plan, logit_scale, inputs)
        return super().terms(image_features, text_features, logit_scale, extra)
