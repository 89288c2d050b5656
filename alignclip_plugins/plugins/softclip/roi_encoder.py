"""SoftCLIP's ROI encoder: an ROI set to one embedding through "the rear part of the image
encoder" (SoftCLIP §3.2, App. C.3; docs/methods.md, "ROI encoder").

``RoiEncoder(rois (B, K, F), mask (B, K) bool) -> (B, embed_dim)`` (not normalised). The
ROI vectors go through a linear map from F (2052) to the tower's width, then:

* ViT (open_clip ``VisionTransformer``), mode ``mhsa``: a learnable class token and copies
  of the tower's last ``k`` transformer blocks, then copies of its final norm
  (``ln_post``) and projection (``proj``) applied to the class token's output;
* ModifiedResNet (RN50 and the like), mode ``mhsa``: a copy of its attention pool
  (query: the masked mean of the ROI tokens, as the pool queries with the mean of the
  grid; no positional embedding, since ROIs are a set and carry their box coordinates);
* modes ``mean`` / ``max`` / ``min`` (Table 10): the element-wise masked mean / max / min
  of the projected ROI tokens, no attention, then the same head (ViT: ``ln_post`` +
  ``proj``; ResNet: the pool's output projection ``c_proj``).

Padding slots (``mask`` False) are excluded everywhere: masked out of attention as keys,
never averaged, maxed or minned in. A sample without ROIs gets a finite embedding (the
class token's / zero pooling) that the loss ignores (``roi_valid``).

The rear blocks are **copies** of the image tower's (initialised from its weights when the
encoder is built), not shared with it. The image tower then stays exactly upstream's
(stock checkpoints, ``--lock-image``, grad checkpointing and DDP see an unchanged tower),
and the ROI-tag term cannot pull the image tower toward detector features; the soft
targets come from a branch that is independent of the student, which is what the paper's
Fig. 4a credits for their value (ROI/tag guidance beats image/text self-similarity
guidance). The cost is the copied parameters: ``k`` blocks (ViT-B: 7.1 M each) or the
attention pool (RN50: 14.8 M), saved with the model as ``roi_encoder.*``.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import Tensor, nn

MODES = ("mhsa", "mean", "max", "min")


def masked_pool(tokens: Tensor, mask: Tensor, mode: str) -> Tensor:
    """Element-wise ``mean`` / ``max`` / ``min`` of ``tokens`` (B, K, C) over ``mask`` (B, K).

    Rows without any valid slot give zeros.
    """
    valid = mask.unsqueeze(-1)
    if mode == "mean":
        total = (tokens * valid.to(tokens.dtype)).sum(1)
        return total / mask.sum(1, keepdim=True).clamp_min(1).to(tokens.dtype)
    if mode not in ("max", "min"):
        raise ValueError(f"pooling mode must be mean, max or min, got {mode!r}")
    fill = float("-inf") if mode == "max" else float("inf")
    filled = tokens.masked_fill(~valid, fill)
    pooled = filled.amax(1) if mode == "max" else filled.amin(1)
    return torch.where(mask.any(1, keepdim=True), pooled, torch.zeros_like(pooled))


class RoiEncoder(nn.Module):
    """Base: the linear ROI embedding and the mask handling; subclasses hold the rear part."""

    def __init__(self, in_dim: int, width: int, mode: str) -> None:
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"ROI encoder mode must be one of {MODES}, got {mode!r}")
        self.mode = mode
        self.in_dim = in_dim
        self.embed = nn.Linear(in_dim, width)

    def _tokens(self, rois: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        if rois.dim() != 3 or rois.shape[-1] != self.in_dim:
            raise ValueError(f"ROI features must be (B, K, {self.in_dim}), got {tuple(rois.shape)}")
        if mask.shape != rois.shape[:2]:
            raise ValueError(f"ROI mask {tuple(mask.shape)} does not match {tuple(rois.shape)}")
        mask = mask.bool()
        # zero the padding so that no garbage (or NaN) in a padded slot can reach the output
        rois = rois.to(self.embed.weight.dtype).masked_fill(~mask.unsqueeze(-1), 0.0)
        return self.embed(rois), mask


class VitRoiEncoder(RoiEncoder):
    """ROI encoder over copies of the last blocks of an open_clip ``VisionTransformer``."""

    def __init__(self, visual: nn.Module, in_dim: int, mode: str = "mhsa", layers: int = 1):
        width = int(visual.class_embedding.shape[0])
        super().__init__(in_dim, width, mode)
        blocks = visual.transformer.resblocks
        if mode == "mhsa":
            if not 1 <= layers <= len(blocks):
                raise ValueError(
                    f"--softclip-roi-layers must be in [1, {len(blocks)}] for this tower, "
                    f"got {layers}"
                )
            self.class_embedding = nn.Parameter(visual.class_embedding.detach().clone())
            self.blocks = nn.ModuleList(copy.deepcopy(b) for b in blocks[len(blocks) - layers :])
            self.batch_first = bool(getattr(visual.transformer, "batch_first", True))
        self.ln_post = copy.deepcopy(visual.ln_post)
        proj = getattr(visual, "proj", None)
        self.proj = None if proj is None else nn.Parameter(proj.detach().clone())

    def _attention_mask(self, mask: Tensor, dtype: torch.dtype) -> Tensor:
        """Additive (B * heads, 1 + K, 1 + K) mask hiding the padding keys (class token kept)."""
        b = mask.shape[0]
        keys = torch.cat([mask.new_ones(b, 1), mask], dim=1)
        additive = torch.zeros(keys.shape, dtype=dtype, device=mask.device)
        additive.masked_fill_(~keys, float("-inf"))
        heads = self.blocks[0].attn.num_heads
        q = keys.shape[1]
        return additive[:, None, None, :].expand(b, heads, q, q).reshape(b * heads, q, q)

    def forward(self, rois: Tensor, mask: Tensor) -> Tensor:
        tokens, mask = self._tokens(rois, mask)
        if self.mode == "mhsa":
            cls = self.class_embedding.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
            x = torch.cat([cls, tokens], dim=1)
            attn_mask = self._attention_mask(mask, x.dtype)
            if not self.batch_first:
                x = x.transpose(0, 1)
            for block in self.blocks:
                x = block(x, attn_mask=attn_mask)
            pooled = x[:, 0] if self.batch_first else x[0]
        else:
            pooled = masked_pool(tokens, mask, self.mode)
        pooled = self.ln_post(pooled)
        return pooled if self.proj is None else pooled @ self.proj.to(pooled.dtype)


class ResNetRoiEncoder(RoiEncoder):
    """ROI encoder over a copy of an open_clip ``ModifiedResNet``'s attention pool."""

    def __init__(self, visual: nn.Module, in_dim: int, mode: str = "mhsa"):
        pool = visual.attnpool
        super().__init__(in_dim, int(pool.k_proj.in_features), mode)
        self.num_heads = int(pool.num_heads)
        if mode == "mhsa":
            self.q_proj = copy.deepcopy(pool.q_proj)
            self.k_proj = copy.deepcopy(pool.k_proj)
            self.v_proj = copy.deepcopy(pool.v_proj)
        self.c_proj = copy.deepcopy(pool.c_proj)

    def forward(self, rois: Tensor, mask: Tensor) -> Tensor:
        tokens, mask = self._tokens(rois, mask)
        if self.mode != "mhsa":
            return self.c_proj(masked_pool(tokens, mask, self.mode))
        query = masked_pool(tokens, mask, "mean").unsqueeze(1)  # the pool's mean token
        x = torch.cat([query, tokens], dim=1).transpose(0, 1)  # (1 + K, B, C)
        ignore = torch.cat([mask.new_zeros(mask.shape[0], 1), ~mask], dim=1)
        out, _ = F.multi_head_attention_forward(
            query=x[:1],
            key=x,
            value=x,
            embed_dim_to_check=x.shape[-1],
            num_heads=self.num_heads,
            q_proj_weight=self.q_proj.weight,
            k_proj_weight=self.k_proj.weight,
            v_proj_weight=self.v_proj.weight,
            in_proj_weight=None,
            in_proj_bias=torch.cat([self.q_proj.bias, self.k_proj.bias, self.v_proj.bias]),
            bias_k=None,
            bias_v=None,
            add_zero_attn=False,
            dropout_p=0.0,
            out_proj_weight=self.c_proj.weight,
            out_proj_bias=self.c_proj.bias,
            use_separate_proj_weight=True,
            training=self.training,
            key_padding_mask=ignore,
            need_weights=False,
        )
        return out[0]


def build_roi_encoder(model: nn.Module, in_dim: int, mode: str = "mhsa", layers: int = 1):
    """The ROI encoder for ``model``'s image tower (see the module docstring)."""
    visual = getattr(model, "visual", None)
    if visual is not None and hasattr(visual, "attnpool") and visual.attnpool is not None:
        return ResNetRoiEncoder(visual, in_dim, mode)
    if (
        visual is not None
        and hasattr(visual, "class_embedding")
        and hasattr(visual, "transformer")
        and hasattr(visual, "ln_post")
    ):
        if getattr(visual, "attn_pool", None) is not None:
            raise ValueError(
                "the ROI encoder supports ViT towers with class-token pooling; this tower "
                "uses an attentional pooler"
            )
        return VitRoiEncoder(visual, in_dim, mode, layers)
    kind = type(visual).__name__ if visual is not None else "none"
    raise ValueError(
        f"the SoftCLIP ROI encoder needs an open_clip VisionTransformer or ModifiedResNet "
        f"image tower (the 'rear part' it copies); this model's tower is {kind}"
    )
