"""Zero-shot classification of labelled images with text prototypes."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch
from tqdm import tqdm

from alignclip_plugins.evaluation.encoder import Encoder
from alignclip_plugins.evaluation.metrics import mean_per_class_recall, topk_correct
from alignclip_plugins.evaluation.sources import unpack

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
    for class_prompts in tqdm(prompts, desc="class prototypes", unit="class", leave=False):
        feats = model.encode_text(tokenizer(list(class_prompts)).to(device), normalize=True)
        columns.append(torch.nn.functional.normalize(feats.float().mean(dim=0), dim=-1))
    return torch.stack(columns, dim=1)


@torch.no_grad()
def evaluate_batches(
    encoder: Encoder,
    classifier: torch.Tensor,
    batches: Iterable,
    *,
    tail: Sequence[bool] | None = None,
    attributes: Mapping[str, Sequence[int]] | None = None,
    where: str = "the data",
) -> dict[str, float]:
    """Zero-shot metrics of ``(images, labels, ...)`` batches against ``classifier`` (D, C).

    Returns ``top1``, ``top5`` (top-C when C < 5), ``mean_per_class_recall``, ``tail_top1``
    when ``tail`` marks tail classes and the data has some, all in [0, 1], and ``n``.
    Ties count against the target (see :func:`topk_correct`). ``attributes`` maps a name to
    each class's value of a coarser attribute (e.g. ``{"colour": [0, 0, 1, ...]}``, length C);
    ``<name>_top1`` is then how often the top-1 class has the target's value.
    """
    num_classes = classifier.shape[1]
    k5 = min(5, num_classes)
    for name, values in (attributes or {}).items():
        if len(values) != num_classes:
            raise ValueError(f"attribute {name!r}: {len(values)} values for {num_classes} classes")
    hits1, hits5, labels, preds = [], [], [], []
    for batch in batches:
        images, targets, _, _ = unpack(batch)
        target = torch.as_tensor(list(targets), device=encoder.device).long()
        if int(target.max()) >= num_classes or int(target.min()) < 0:
            bad = int(target.max()) if int(target.max()) >= num_classes else int(target.min())
            raise ValueError(f"label {bad} in {where} but only {num_classes} class names")
        logits = encoder.images(images) @ classifier.to(encoder.device)
        hits = topk_correct(logits, target, (1, k5))
        hits1.append(hits[1])
        hits5.append(hits[k5])
        labels.append(target)
        preds.append(logits.argmax(dim=1))
    if not labels:
        raise ValueError(f"no images in {where}")
    hit1, hit5, label = torch.cat(hits1), torch.cat(hits5), torch.cat(labels)
    out = {
        "top1": hit1.float().mean().item(),
        "top5": hit5.float().mean().item(),
        "mean_per_class_recall": mean_per_class_recall(hit1, label),
        "n": len(label),
    }
    if tail is not None:
        if len(tail) != num_classes:
            raise ValueError(f"{len(tail)} tail flags for {num_classes} classes")
        is_tail = torch.tensor(list(tail), dtype=torch.bool, device=label.device)[label]
        if bool(is_tail.any()):
            out["tail_top1"] = hit1[is_tail].float().mean().item()
    pred = torch.cat(preds)
    for name, values in (attributes or {}).items():
        value = torch.tensor(list(values), device=label.device)
        out[f"{name}_top1"] = (value[pred] == value[label]).float().mean().item()
    return out
