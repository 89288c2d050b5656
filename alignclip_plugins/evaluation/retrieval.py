"""Image-text retrieval on captioned images (one or more captions per image).

The standard protocol of Flickr8k / Flickr30k / COCO (5 captions an image): every caption
is a query, a hit at text→image R@k when its own image is among the k best images; every
image is a query, a hit at image→text R@k when any of its captions is among the k best
captions. With one caption per image both reduce to the usual pairwise recall.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch

from alignclip_plugins.evaluation.encoder import Encoder
from alignclip_plugins.evaluation.metrics import best_positive_rank
from alignclip_plugins.evaluation.sources import unpack


@dataclass
class Embeddings:
    """A captioned dataset, embedded: every image and every caption, and who owns whom."""

    images: torch.Tensor  # (N, D) unit vectors
    texts: torch.Tensor  # (T, D) unit vectors
    owner: torch.Tensor  # (T,) long: the image index of each caption
    captions: list[str]
    keys: list[str]  # (N,) image keys
    thumbnails: list[bytes] | None = None  # (N,) JPEG thumbnails when the batches had them


@torch.no_grad()
def embed(encoder: Encoder, batches: Iterable) -> Embeddings:
    """Embed ``(images, [captions of each image], keys[, thumbnails])`` batches."""
    image_feats, text_feats, owner, captions, keys = [], [], [], [], []
    thumbs: list[bytes] | None = []
    offset = 0
    for batch in batches:
        images, targets, batch_keys, batch_thumbs = unpack(batch)
        image_feats.append(encoder.images(images))
        lines: list[str] = []
        for i, caps in enumerate(targets):
            caps = [caps] if isinstance(caps, str) else list(caps)
            if not caps:
                raise ValueError(f"image {offset + i} has no caption")
            owner += [offset + i] * len(caps)
            lines += caps
        text_feats.append(encoder.texts(lines))
        captions += lines
        if batch_keys is None:
            batch_keys = [str(offset + i) for i in range(len(targets))]
        keys += list(batch_keys)
        if thumbs is not None and batch_thumbs is not None:
            thumbs += list(batch_thumbs)
        else:
            thumbs = None
        offset += len(targets)
    if not image_feats:
        raise ValueError("no captioned images to embed")
    images_, texts_ = torch.cat(image_feats), torch.cat(text_feats)
    return Embeddings(
        images=images_,
        texts=texts_,
        owner=torch.tensor(owner, device=images_.device),
        captions=captions,
        keys=keys,
        thumbnails=thumbs or None,
    )


@torch.no_grad()
def recall_metrics(
    emb: Embeddings, ks: Sequence[int] = (1, 5, 10), chunk: int = 1024
) -> dict[str, float]:
    """``text_to_image_R@k`` (each caption a query; its image the positive) and
    ``image_to_text_R@k`` (each image a query; any of its captions a hit), in [0, 1].
    Ties count against the positives. Scores are computed ``chunk`` queries at a time."""
    n_images = len(emb.images)
    image_index = torch.arange(n_images, device=emb.images.device)
    t2i = torch.cat(
        [
            best_positive_rank(
                emb.texts[s : s + chunk] @ emb.images.T,
                emb.owner[s : s + chunk, None] == image_index[None, :],
            )
            for s in range(0, len(emb.texts), chunk)
        ]
    )
    i2t = torch.cat(
        [
            best_positive_rank(
                emb.images[s : s + chunk] @ emb.texts.T,
                image_index[s : s + chunk, None] == emb.owner[None, :],
            )
            for s in range(0, n_images, chunk)
        ]
    )
    out = {f"image_to_text_R@{k}": (i2t < k).float().mean().item() for k in ks}
    out.update({f"text_to_image_R@{k}": (t2i < k).float().mean().item() for k in ks})
    return out
