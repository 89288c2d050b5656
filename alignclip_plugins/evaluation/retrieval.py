"""Image-text retrieval on captioned webdataset images (one or more captions per image)."""

from __future__ import annotations

import torch
from tqdm import tqdm

from alignclip_plugins.evaluation.metrics import recall_at_k
from alignclip_plugins.evaluation.shards import as_text, iterate_batches


@torch.no_grad()
def evaluate(
    model, preprocess, tokenizer, urls, *, device="cpu", batch_size: int = 256, ks=(1, 5, 10)
) -> dict[str, float]:
    """``image_to_text_R@k`` and ``text_to_image_R@k`` in [0, 1].

    A sample's ``txt`` member may hold several captions, one per line; each is a query.
    """
    image_feats, text_feats, owner = [], [], []
    offset = 0
    for images, rows in tqdm(
        iterate_batches(urls, preprocess, ("txt",), batch_size), desc="retrieval", unit="batch"
    ):
        image_feats.append(model.encode_image(images.to(device), normalize=True))
        captions: list[str] = []
        for i, (text,) in enumerate(rows):
            lines = [c for c in as_text(text).splitlines() if c.strip()]
            owner += [offset + i] * len(lines)
            captions += lines
        offset += len(rows)
        text_feats.append(model.encode_text(tokenizer(captions).to(device), normalize=True))
    images_, texts_ = torch.cat(image_feats), torch.cat(text_feats)
    text_owner = torch.tensor(owner, device=images_.device)
    positives = text_owner[:, None] == torch.arange(len(images_), device=images_.device)[None, :]
    scores = texts_ @ images_.T
    out = {f"text_to_image_R@{k}": v for k, v in recall_at_k(scores, positives, ks).items()}
    out.update(
        {f"image_to_text_R@{k}": v for k, v in recall_at_k(scores.T, positives.T, ks).items()}
    )
    return out
