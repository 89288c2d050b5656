"""What Object-IoU's targets look like on a captioned dataset's own captions.

Random training batches as the trainer draws them with ``--caption-choice random`` (one of
each image's captions, its object set from the per-caption sidecars of ``alignclip objects
parse``), the Object-IoU targets of AlignCLIP's loss at ``--beta`` computed by the library
(:func:`alignclip_plugins.losses.functional.object_iou_targets`), and how they look:

- the share of in-batch pairs (i != j) whose captions' object sets overlap (IoU > 0),
- the mean target mass off the diagonal (image->text rows; 0 for hard CLIP),
- objects per caption, captions without an object,
- the objects that most often make two captions of a batch overlap.

Prints Markdown (docs/results.md, "Flickr8k from scratch")::

    python bench/caption_targets.py runs/prepared/flickr8k/objects-vocab --batch-size 128
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import torch

from alignclip_plugins.batching import pad_ids
from alignclip_plugins.losses.functional import object_iou_matrix, object_iou_targets
from alignclip_plugins.objects.sidecar import iter_records, sidecar_files


def caption_sets(objects_dir: str | Path) -> list[list[list[str]]]:
    """Each sample's per-caption object sets, over every sidecar in ``objects_dir``
    (a one-caption sidecar counts as one caption per sample)."""
    return [
        record.captions if record.captions is not None else [record.objects]
        for path in sidecar_files(objects_dir)
        for record in iter_records(path)
    ]


def target_statistics(
    samples: Sequence[Sequence[Sequence[str]]],
    batch_size: int = 128,
    batches: int = 200,
    beta: float = 0.5,
    seed: int = 0,
) -> dict:
    """Statistics of ``batches`` random batches of ``batch_size`` samples (see the module)."""
    if batch_size > len(samples):
        raise ValueError(f"--batch-size {batch_size} is larger than the {len(samples)} samples")
    rng, vocab = random.Random(seed), {}
    off = ~torch.eye(batch_size, dtype=torch.bool)
    overlap, off_mass, sizes, shared = [], [], [], Counter()
    for _ in range(batches):
        chosen = [rng.choice(samples[i]) for i in rng.sample(range(len(samples)), batch_size)]
        # (N, M) ids padded with -1, as the trainer collates them for the loss
        objects = pad_ids([[vocab.setdefault(name, len(vocab)) for name in s] for s in chosen])
        rows, _ = object_iou_targets(objects, objects, beta=beta)
        overlapping = (object_iou_matrix(objects, objects) > 0) & off
        overlap.append(overlapping[off].float().mean().item())
        off_mass.append((1 - rows.diagonal()).mean().item())
        sets = [frozenset(s) for s in chosen]
        sizes += [len(s) for s in sets]
        for i, j in overlapping.nonzero().tolist():
            if i < j:
                shared.update(sets[i] & sets[j])
    total = sum(shared.values()) or 1
    return {
        "batch_size": batch_size,
        "batches": batches,
        "beta": beta,
        "pairs_iou_gt0": statistics.fmean(overlap),
        "target_off_diagonal": statistics.fmean(off_mass),
        "objects_per_caption": statistics.fmean(sizes),
        "captions_without_objects": sum(1 for n in sizes if n == 0) / len(sizes),
        "top_shared": [(name, n / total) for name, n in shared.most_common(8)],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("objects", type=Path, help="a directory of *.objects.jsonl sidecars")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    try:
        samples = caption_sets(args.objects)
        s = target_statistics(samples, args.batch_size, args.batches, args.beta, args.seed)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(
        "| batch | pairs with caption IoU > 0 | target mass off the diagonal (β = "
        f"{s['beta']}) | objects per caption | captions without an object |"
    )
    print("|---|---|---|---|---|")
    print(
        f"| {s['batch_size']} | {100 * s['pairs_iou_gt0']:.1f}% "
        f"| {100 * s['target_off_diagonal']:.1f}% | {s['objects_per_caption']:.2f} "
        f"| {100 * s['captions_without_objects']:.2f}% |"
    )
    top = ", ".join(f"{name} {100 * share:.0f}%" for name, share in s["top_shared"])
    print(f"\nobjects shared by overlapping pairs (share of shared objects): {top}")


if __name__ == "__main__":
    main()
