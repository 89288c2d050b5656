"""Zero-shot classification of labelled webdataset images with text prototypes."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm import tqdm

from alignclip_plugins.evaluation.metrics import topk_correct
from alignclip_plugins.evaluation.shards import as_int, iterate_batches

# Plain prompt templates; open_clip's OPENAI_IMAGENET_TEMPLATES suit photographs better.
SIMPLE_TEMPLATES: tuple[str, ...] = (
    "a photo of a {}.",
    "a picture of a {}.",
    "an image showing a {}.",
    "a {}.",
)


@torch.no_grad()
def text_prototypes(model, tokenizer, prompts: Sequence[Sequence[str]], device) -> torch.Tensor:
    """Class embeddings (D, C): the normalised mean of each class's normalised prompt embeddings."""
    columns = []
    for class_prompts in prompts:
        feats = model.encode_text(tokenizer(list(class_prompts)).to(device), normalize=True)
        columns.append(torch.nn.functional.normalize(feats.mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)


@torch.no_grad()
def evaluate(
    model,
    preprocess,
    tokenizer,
    urls: str | list[str],
    classnames: Sequence[str],
    *,
    templates: Sequence[str] = SIMPLE_TEMPLATES,
    prompts: Sequence[Sequence[str]] | None = None,
    tail: Sequence[bool] | None = None,
    device="cpu",
    batch_size: int = 256,
) -> dict[str, float]:
    """``top1``, ``top5`` (and ``tail_top1`` when ``tail`` marks tail classes), in [0, 1].

    Each class's prototype comes from ``prompts[c]`` when given (see
    :mod:`alignclip_plugins.evaluation.prototypes`), else from ``templates``.
    """
    if prompts is None:
        prompts = [[t.format(c) for t in templates] for c in classnames]
    if len(prompts) != len(classnames):
        raise ValueError(f"{len(prompts)} prompt lists for {len(classnames)} classes")
    classifier = text_prototypes(model, tokenizer, prompts, device)
    hits1, hits5, labels = [], [], []
    for images, rows in tqdm(
        iterate_batches(urls, preprocess, ("cls",), batch_size), desc="zero-shot", unit="batch"
    ):
        target = torch.tensor([as_int(r[0]) for r in rows], device=device)
        if int(target.max()) >= len(classnames):
            raise ValueError(
                f"label {int(target.max())} in {urls} but only {len(classnames)} class names"
            )
        logits = model.encode_image(images.to(device), normalize=True) @ classifier
        hits = topk_correct(logits, target, (1, min(5, len(classnames))))
        hits1.append(hits[1])
        hits5.append(hits[min(5, len(classnames))])
        labels.append(target)
    hit1, hit5, label = torch.cat(hits1), torch.cat(hits5), torch.cat(labels)
    out = {"top1": hit1.float().mean().item(), "top5": hit5.float().mean().item(), "n": len(label)}
    if tail is not None:
        is_tail = torch.tensor(list(tail), device=label.device)[label]
        if bool(is_tail.any()):
            out["tail_top1"] = hit1[is_tail].float().mean().item()
    return out
