"""SoftCLIP's extra loss inputs of a training step: the ROI and tag embeddings.

Each sample's ROIs (``roi_features`` (B, K, 2052), ``roi_mask`` (B, K)) go through the ROI
encoder attached to the model (:mod:`.roi_encoder`) to r_i; its tag sentence (``tag_text``
(B, L) token ids) goes through the model's own text tower on L positions only
(:func:`alignclip_plugins.models.text_trim.encode_text_trimmed`) to a_i.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from alignclip_plugins.host import unwrap
from alignclip_plugins.models.text_trim import encode_text_trimmed
from alignclip_plugins.plugins.softclip.options import roi_grad, tag_grad


def roi_and_tag_features(model, batch: dict, args: argparse.Namespace, *, pad_id: int = 0) -> dict:
    """``roi_features``, ``tag_features`` (L2-normalised, (B, D)) and ``roi_valid`` (B,).

    ``pad_id``: the id the tag sentences are padded with (the tokenizer's). Gradients reach
    the ROI encoder and the text tower only where the chosen loss trains them
    (:func:`~.options.roi_grad`, :func:`~.options.tag_grad`).
    """
    clip = unwrap(model)
    mask = batch["roi_mask"]
    grad = torch.is_grad_enabled()
    with torch.set_grad_enabled(grad and roi_grad(args)):
        roi = F.normalize(clip.roi_encoder(batch["roi_features"], mask), dim=-1)
    with torch.set_grad_enabled(grad and tag_grad(args)):
        tag = encode_text_trimmed(clip, batch["tag_text"], normalize=True, pad_id=pad_id)
    return {"roi_features": roi, "tag_features": tag, "roi_valid": mask.any(1)}
