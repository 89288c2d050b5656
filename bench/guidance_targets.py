"""What the detector-free SoftCLIP row's targets look like: self-similarity guidance.

``softclip-guidance-mix`` at γ = 0 (SoftCLIP Fig. 4a's end point) trains image->text rows
towards ``(1-β) e_i + β softmax(s V Vᵀ)_i`` and text->image rows towards the same of
``T Tᵀ``: the targets come from the model's own embeddings. This script embeds a captioned
val set with a model, draws random batches (one caption per image), builds those targets
with the library (:func:`alignclip_plugins.losses.functional.softclip_target_log_rows`) and
reports, per direction:

- the mean target mass off the diagonal (at most β),
- the share of that mass on the single largest off-diagonal entry (1 / (N-1) when the
  off-diagonal part is uniform, 1 when it names one neighbour): how peaked the negatives'
  soft targets are, which is what the relation term (negative disentangling) trains on.

``--init`` also measures the same architecture at random initialisation (torch seed 0),
where a from-scratch run starts. Prints Markdown (docs/results.md, "Flickr8k from
scratch")::

    python bench/guidance_targets.py runs/<run>/checkpoints/epoch_10.pt \\
        --data 'flickr8k/val-{000000..000001}.tar' --init
"""

from __future__ import annotations

import argparse
import random
import statistics
from pathlib import Path

import torch

from alignclip_plugins.evaluation.checkpoint import load_model, read_run_params
from alignclip_plugins.evaluation.datasets import WEBDATASET, open_captioned
from alignclip_plugins.evaluation.encoder import Encoder
from alignclip_plugins.evaluation.retrieval import Embeddings, embed
from alignclip_plugins.losses.functional import softclip_target_log_rows


def embed_val(model, preprocess, tokenizer, data: str, label: str) -> Embeddings:
    """Every image and caption of the ``txt``-captioned shards ``data``, embedded on CPU
    (as ``alignclip eval retrieval`` reads them)."""
    source = open_captioned(data, WEBDATASET)
    batches = source.batches(preprocess, batch_size=256, workers=1, desc=f"{source.slug} {label}")
    return embed(Encoder(model.eval(), tokenizer, "cpu", amp=False), batches)


def guidance_statistics(
    emb: Embeddings,
    logit_scale: float,
    beta: float,
    batch_size: int = 128,
    batches: int = 200,
    seed: int = 0,
) -> dict[str, dict[str, float]]:
    """Per direction (``image`` = V Vᵀ guidance, ``text`` = T Tᵀ): ``off_diagonal`` (mean
    target mass off the diagonal) and ``top_share`` (mean share of it on the largest entry)."""
    n_images = len(emb.images)
    if batch_size > n_images:
        raise ValueError(f"--batch-size {batch_size} is larger than the {n_images} images")
    captions_of: list[list[int]] = [[] for _ in range(n_images)]
    for t, owner in enumerate(emb.owner.tolist()):
        captions_of[owner].append(t)
    rng = random.Random(seed)
    eye = torch.eye(batch_size, dtype=torch.bool)
    out: dict[str, dict[str, list[float]]] = {
        d: {"off_diagonal": [], "top_share": []} for d in ("image", "text")
    }
    for _ in range(batches):
        chosen = rng.sample(range(n_images), batch_size)
        feats = {
            "image": emb.images[chosen],
            "text": emb.texts[[rng.choice(captions_of[i]) for i in chosen]],
        }
        for direction, x in feats.items():
            rows = softclip_target_log_rows(logit_scale * x @ x.T, eye, beta).exp()
            off = rows.masked_fill(eye, 0.0)
            mass = off.sum(1)
            out[direction]["off_diagonal"].append(mass.mean().item())
            out[direction]["top_share"].append((off.amax(1) / mass).mean().item())
    return {d: {k: statistics.fmean(v) for k, v in s.items()} for d, s in out.items()}


def _row(label: str, scale: float, beta: float, stats: dict) -> str:
    i, t = stats["image"], stats["text"]
    return (
        f"| {label} | {scale:.1f} | {beta} | {100 * i['off_diagonal']:.1f}% "
        f"| {100 * i['top_share']:.1f}% | {100 * t['off_diagonal']:.1f}% "
        f"| {100 * t['top_share']:.1f}% |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoints", type=Path, nargs="+", help="epoch_N.pt of training runs")
    parser.add_argument("--data", required=True, help="val shards with 'txt' captions")
    parser.add_argument("--beta", type=float, help="β (default: the run's --softclip-beta)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--init", action="store_true", help="also the architecture at init")
    args = parser.parse_args()
    import open_clip

    print(
        "| model | logit scale s | β | image guidance off the diagonal | its top entry "
        "| text guidance off the diagonal | its top entry |"
    )
    print("|---|---|---|---|---|---|---|")
    uniform = 1 / (args.batch_size - 1)
    first_params = read_run_params(args.checkpoints[0])
    beta = args.beta if args.beta is not None else float(first_params.get("softclip_beta", 0.3))
    models = []
    if args.init:
        torch.manual_seed(0)
        model, _, preprocess = open_clip.create_model_and_transforms(first_params["model"])
        tokenizer = open_clip.get_tokenizer(first_params["model"])
        models.append(("random init", model, preprocess, tokenizer))
    for path in args.checkpoints:
        loaded = load_model(None, path)
        models.append((loaded.label, loaded.model, loaded.preprocess, loaded.tokenizer))
    try:
        for label, model, preprocess, tokenizer in models:
            emb = embed_val(model, preprocess, tokenizer, args.data, label)
            scale = model.logit_scale.exp().item()
            stats = guidance_statistics(emb, scale, beta, args.batch_size, args.batches, args.seed)
            print(_row(label, scale, beta, stats), flush=True)
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None
    print(f"\nuniform off-diagonal part: top entry {100 * uniform:.1f}%")


if __name__ == "__main__":
    main()
