"""Text-tower encoding of short token sequences without running the padding.

SoftCLIP encodes a tag sentence per sample in every step; tag sentences are short
("red car, white shirt, ...": 10-40 tokens against a context of 77). open_clip's
``CLIP.encode_text`` always runs the full context: it adds the whole positional embedding
and uses the full causal mask, so shorter inputs fail. :func:`encode_text_trimmed` runs the
tower on ``tokens`` (B, L) with L <= context length, slicing the positional embedding and
the causal mask to L. With a causal mask and a pooling that reads a position < L
(``argmax`` = the end-of-text token, ``eos``, ``first``), no kept position attends to the
cut padding, so the result equals the full-length encode of the same tokens padded back
(up to floating-point summation order); :func:`can_trim` says whether a model qualifies.
Otherwise the tokens are padded back to the context and encoded in full.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TRIM_SAFE_POOLS = ("argmax", "eos", "first")


def _tower(model: nn.Module) -> tuple[nn.Module, str, bool] | None:
    """(module holding the text parts, pool type, uses a padding mask) or None."""
    text = getattr(model, "text", None)
    if text is not None and hasattr(text, "token_embedding") and hasattr(text, "ln_final"):
        if getattr(text, "cls_emb", None) is not None:
            return None  # CoCa-style appended class token
        return text, str(getattr(text, "pool_type", "")), bool(getattr(text, "use_pad_mask", False))
    needed = ("token_embedding", "positional_embedding", "transformer", "ln_final", "attn_mask")
    if all(hasattr(model, a) for a in needed):
        return model, str(getattr(model, "text_pool_type", "argmax")), False
    return None


def context_length(model: nn.Module) -> int:
    text = getattr(model, "text", None)
    for owner in (model, text):
        length = getattr(owner, "context_length", None) if owner is not None else None
        if length:
            return int(length)
    raise ValueError("cannot tell the text context length of this model")


def can_trim(model: nn.Module) -> bool:
    """Whether :func:`encode_text_trimmed` can skip the padding exactly for ``model``."""
    found = _tower(model)
    if found is None:
        return False
    owner, pool, pad_mask = found
    return pool in TRIM_SAFE_POOLS and (getattr(owner, "attn_mask", None) is not None or pad_mask)


def pad_to_context(tokens: Tensor, length: int, pad_id: int = 0) -> Tensor:
    """``tokens`` (B, L) right-padded with ``pad_id`` to (B, length)."""
    if tokens.shape[1] > length:
        raise ValueError(f"{tokens.shape[1]} tokens exceed the context length {length}")
    return F.pad(tokens, (0, length - tokens.shape[1]), value=pad_id)


def encode_text_trimmed(
    model: nn.Module, tokens: Tensor, *, normalize: bool = False, pad_id: int = 0
) -> Tensor:
    """Text embeddings (B, embed_dim) of ``tokens`` (B, L), L <= the context length.

    Equal to ``model.encode_text(pad_to_context(tokens, ...))``; runs only L positions
    when :func:`can_trim` holds.
    """
    n_ctx = context_length(model)
    if tokens.shape[1] > n_ctx:
        raise ValueError(f"{tokens.shape[1]} tokens exceed the context length {n_ctx}")
    if not can_trim(model) or tokens.shape[1] == n_ctx:
        return model.encode_text(pad_to_context(tokens, n_ctx, pad_id), normalize=normalize)
    owner, pool, pad_mask = _tower(model)
    if pad_mask:  # TextTransformer with a padding mask slices by itself
        x = owner(tokens)
        return F.normalize(x, dim=-1) if normalize else x
    length = tokens.shape[1]
    cast_dtype = owner.transformer.get_cast_dtype()
    x = owner.token_embedding(tokens).to(cast_dtype)
    x = x + owner.positional_embedding[:length].to(cast_dtype)
    x = owner.transformer(x, attn_mask=owner.attn_mask[:length, :length])
    x = owner.ln_final(x)
    if pool == "argmax":
        x = x[torch.arange(x.shape[0], device=x.device), tokens.argmax(dim=-1)]
    elif pool == "eos":
        eos = getattr(owner, "text_eos_id", getattr(owner, "eos_id", None))
        x = x[torch.arange(x.shape[0], device=x.device), (tokens == eos).int().argmax(dim=-1)]
    else:  # first
        x = x[:, 0]
    projection = getattr(owner, "text_projection", None)
    if projection is not None:
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
    return F.normalize(x, dim=-1) if normalize else x
