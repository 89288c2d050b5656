"""Why the soft-label methods do (not) move the demo's numbers: diagnostics on the embedded data.

Four analyses, each printing Markdown (docs/results.md, "Why" and "The comparison"):

``targets``   Object-IoU targets as the trainer sees them: random training batches, object
              sets from the demo's sidecars (``DATA/objects-vocab``) against the
              generator's ground truth (each sample's ``json``): how much target mass moves
              to other samples at ``--beta``, how often a caption-IoU > 0 pair shares no
              true object (mismatched captions) and how often pairs sharing a true object
              get IoU 0 (captions that omit objects).
``agreement`` For each checkpoint of a demo ``--out`` directory (SoftCLIP runs carry their
              ROI encoder): how much of the off-diagonal probability of the model's soft
              distributions (SoftCLIP's R2R / A2A targets, the image->text and text->image
              predictions) lies on samples that share a true object, against the uniform
              share, on the first training shard; and, in a second table, how much lies on
              samples that share no object but an object of the same shape in another
              colour (what ties a "red ring" to a "blue ring").
``errors``    Retrieval on the retrieval split: R@1 and how often a wrong top-1 shares an
              object with the query (the base rate is the share of random pairs that do).
``paired``    Each row's difference to CLIP seed by seed, with its paired standard error.

Usage::

    python bench/demo_diagnostics.py targets --data data/synthetic --out demo-runs
    python bench/demo_diagnostics.py agreement --data data/synthetic --out demo-runs
    python bench/demo_diagnostics.py errors --data data/synthetic --out demo-runs
    python bench/demo_diagnostics.py paired --out demo-runs

``--out`` is the demo's ``--out`` (runs ``demo__<row>__demo__synthetic__seed<s>``, each with
the ``recipe.yaml`` the launcher wrote); ``--data`` its ``--data``.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import tarfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from alignclip_plugins.batching import pad_ids
from alignclip_plugins.losses.functional import object_iou_matrix, object_iou_targets
from alignclip_plugins.model_configs import model_arg

MODEL = model_arg("RN-Demo-64")  # the demo's (recipes/conf/model/demo.yaml)


def read_shard(path: Path) -> dict[str, dict[str, bytes]]:
    """``{key: {ext: bytes}}`` of one (small) shard."""
    samples: dict[str, dict[str, bytes]] = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isreg():
                key, ext = member.name.split(".", 1)
                samples.setdefault(key, {})[ext] = tar.extractfile(member).read()
    return samples


def true_objects(sample: dict[str, bytes]) -> frozenset[str]:
    return frozenset(json.loads(sample["json"])["objects"])


def targets(args: argparse.Namespace) -> None:
    from alignclip_plugins.objects.sidecar import iter_sidecar

    parsed = {
        key: frozenset(objs)
        for path in sorted((args.data / "objects-vocab").glob("*.objects.jsonl"))
        for key, objs in iter_sidecar(path)
    }
    truth = {
        key: true_objects(sample)
        for shard in sorted((args.data / "train").glob("*.tar"))
        for key, sample in read_shard(shard).items()
    }
    if not parsed:
        raise SystemExit(f"no object sidecars under {args.data}/objects-vocab: run the demo first")
    keys, rng, n, vocab = sorted(parsed), random.Random(0), args.batch_size, {}
    off = ~np.eye(n, dtype=bool)
    shares, moved, mismatched, missed = [], [], [], []
    for _ in range(args.batches):
        batch = rng.sample(keys, n)
        objects = pad_ids([[vocab.setdefault(o, len(vocab)) for o in parsed[k]] for k in batch])
        s = object_iou_matrix(objects, objects).numpy()
        shares.append((s[off] > 0).mean())
        rows, _ = object_iou_targets(objects, objects, beta=args.beta)
        moved.append((1 - rows.diagonal()).numpy())
        t = [truth[k] for k in batch]
        pairs = [(i, j) for i in range(n) for j in range(n) if i != j]
        mismatched += [not (t[i] & t[j]) for i, j in pairs if s[i, j] > 0]
        missed += [s[i, j] == 0 for i, j in pairs if t[i] & t[j]]
    print(
        f"| batch | pairs with caption IoU > 0 | target mass on other samples (β = {args.beta}) "
        "| IoU > 0 pairs sharing no true object | object-sharing pairs with IoU 0 |"
    )
    print("|---|---|---|---|---|")
    print(f"| {n} | {100 * np.mean(shares):.1f}% | {100 * np.mean(moved):.1f}% "
          f"| {100 * np.mean(mismatched):.1f}% | {100 * np.mean(missed):.1f}% |")  # fmt: skip


def checkpoints(out: Path) -> dict[str, list[Path]]:
    """``{row: [final checkpoint of each seed]}`` of the demo's finished runs under ``out``
    (a run still training, or stopped, has no checkpoint of its last epoch yet)."""
    runs: dict[str, list[Path]] = {}
    for run in sorted(out.glob("demo__*__seed*")):
        if not (run / "recipe.yaml").is_file():
            continue
        epochs = option(train_argv(run), "--epochs", "0")
        final = run / "checkpoints" / f"epoch_{epochs}.pt"
        if final.is_file():
            runs.setdefault(run.name.split("__")[1], []).append(final)
    return runs


def train_argv(run: Path) -> list[str]:
    """The trainer options the run was started with (its ``recipe.yaml``)."""
    import yaml

    recipe = yaml.safe_load((run / "recipe.yaml").read_text())
    return [str(a) for a in recipe["commands"]["train"]]


def option(argv: list[str], name: str, default: str) -> str:
    return argv[argv.index(name) + 1] if name in argv else default


def load_model(checkpoint: Path):
    """The CLIP model, with its ROI encoder when the run trained one (else ``None``)."""
    import open_clip

    from alignclip_plugins.plugins.softclip.roi_encoder import build_roi_encoder

    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["state_dict"]
    state = {k.removeprefix("module."): v for k, v in state.items()}
    argv = train_argv(checkpoint.parents[1])
    model = open_clip.create_model(option(argv, "--model", MODEL))
    roi = {k[len("roi_encoder.") :]: v for k, v in state.items() if k.startswith("roi_encoder.")}
    encoder = None
    if roi:
        mode = option(argv, "--softclip-roi-encoder", "mhsa")
        encoder = build_roi_encoder(model, 2052, mode, 1)
        encoder.load_state_dict(roi)
        encoder.eval()
    model.load_state_dict({k: v for k, v in state.items() if not k.startswith("roi_encoder.")})
    return model.eval(), encoder


def off_diagonal_share(p: torch.Tensor, sharing: torch.Tensor) -> float:
    """Mean over rows of the off-diagonal probability on object-sharing samples (renormalised)."""
    n = p.shape[0]
    off = ~torch.eye(n, dtype=torch.bool)
    q = p[off].reshape(n, n - 1)
    q = q / q.sum(1, keepdim=True)
    return (q * sharing[off].reshape(n, n - 1).float()).sum(1).mean().item()


def same_shape_only(sets: list[frozenset[str]]) -> torch.Tensor:
    """(N, N): the two samples share no object class but hold objects of the same shape."""
    from alignclip_plugins.synthetic.classes import class_index, class_parts

    shapes = [{class_parts(class_index(name))[1] for name in s} for s in sets]
    return torch.tensor(
        [
            [not (a & b) and bool(sa & sb) for b, sb in zip(sets, shapes)]
            for a, sa in zip(sets, shapes)
        ]
    )


def pairs(samples: dict[str, dict[str, bytes]], keys: list[str]):
    """``(images, tokens, tokenizer, sharing)`` of the samples ``keys``: preprocessed images
    (N, 3, H, W), caption tokens (N, L), and (N, N) whether two samples share a true object."""
    import open_clip
    from PIL import Image

    _, _, preprocess = open_clip.create_model_and_transforms(MODEL)
    tokenizer = open_clip.get_tokenizer(MODEL)
    images = torch.stack(
        [preprocess(Image.open(io.BytesIO(samples[k]["png"])).convert("RGB")) for k in keys]
    )
    tokens = tokenizer([samples[k]["txt"].decode() for k in keys])
    sets = [true_objects(samples[k]) for k in keys]
    sharing = torch.tensor([[bool(a & b) for b in sets] for a in sets])
    return images, tokens, tokenizer, sharing


def encoded(out: Path, images: torch.Tensor, captions: torch.Tensor):
    """Per method of a demo ``out`` directory, per run: ``(model, roi_encoder or None,
    image features (N, D), caption features (N, D))``, L2-normalised."""
    for method, ckpts in checkpoints(out).items():
        runs = []
        for ckpt in ckpts:
            model, encoder = load_model(ckpt)
            v = model.encode_image(images, normalize=True)
            runs.append((model, encoder, v, model.encode_text(captions, normalize=True)))
        yield method, runs


@torch.no_grad()
def agreement(args: argparse.Namespace) -> None:
    from alignclip_plugins.models.text_trim import encode_text_trimmed
    from alignclip_plugins.plugins.softclip.stage import PadTokens, RoiSampleStage

    shard = sorted((args.data / "train").glob("*.tar"))[0]
    samples = read_shard(shard)
    keys = sorted(samples)[: args.samples]
    images, captions, tokenizer, sharing = pairs(samples, keys)
    shape_only = same_shape_only([true_objects(samples[k]) for k in keys])
    rois = args.data / "rois"
    stage = RoiSampleStage(str(rois), 10, tokenizer) if rois.is_dir() else None
    relations = {  # what the off-diagonal probability lies on: (title, (N, N) mask)
        "share": ("on samples that share an object", sharing),
        "shape": ("on samples that share no object but a shape (in another colour)", shape_only),
    }
    off = ~torch.eye(len(keys), dtype=torch.bool)
    rows: dict[str, dict[str, str]] = {relation: {} for relation in relations}
    counts: dict[str, int] = {}
    for method, runs in encoded(args.out, images, captions):
        cells: dict[tuple[str, str], list[float]] = {}
        for model, encoder, v, t in runs:
            scale = model.logit_scale.exp()
            dists = {"i2t": (scale * v @ t.T).softmax(1), "t2i": (scale * t @ v.T).softmax(1)}
            if encoder is not None and stage is not None:
                fields = [stage.fields(k, str(shard)) for k in keys]
                r = encoder(
                    torch.stack([f["roi_features"] for f in fields]),
                    torch.stack([f["roi_mask"] for f in fields]),
                )
                a = encode_text_trimmed(
                    model, PadTokens(0)([f["tag_text"] for f in fields]), normalize=True
                )
                r = F.normalize(r, dim=-1)
                dists["r2r"] = (scale * r @ r.T).softmax(1)
                dists["a2a"] = (scale * a @ a.T).softmax(1)
            for name, p in dists.items():
                for relation, (_, mask) in relations.items():
                    cells.setdefault((relation, name), []).append(off_diagonal_share(p, mask))
        counts[method] = len(runs)
        for relation in relations:
            rows[relation][method] = " | ".join(
                f"{100 * statistics.fmean(cells[relation, n]):.1f}%"
                if (relation, n) in cells
                else "—"
                for n in ("r2r", "a2a", "i2t", "t2i")
            )
    heads = ("R2R target", "A2A target", "image→text prediction", "text→image prediction")
    for relation, (title, mask) in relations.items():
        uniform = mask[off].float().mean().item()
        print(
            f"{len(keys)} training samples of {shard.name}: off-diagonal probability {title}; "
            f"uniform share {100 * uniform:.1f}%\n"
        )
        print("| method | runs | " + " | ".join(heads) + " |")
        print("|---|---|---|---|---|---|")
        for method, row in rows[relation].items():
            print(f"| {method} | {counts[method]} | {row} |")
        print()


@torch.no_grad()
def errors(args: argparse.Namespace) -> None:
    samples = {}
    for shard in sorted((args.data / "retrieval").glob("*.tar")):
        samples.update(read_shard(shard))
    keys = sorted(samples)
    images, captions, _, sharing = pairs(samples, keys)
    sets = [true_objects(samples[k]) for k in keys]
    n = len(keys)
    same = torch.tensor([[a == b for b in sets] for a in sets])  # identical object sets: a hit
    base = sharing[~torch.eye(n, dtype=torch.bool)].float().mean().item()
    print(f"{n} retrieval pairs; random pairs sharing an object: {100 * base:.1f}%\n")
    print(
        "| method | runs | I→T R@1 | wrong I→T top-1 sharing an object | T→I R@1 | wrong T→I top-1 sharing an object |"
    )
    print("|---|---|---|---|---|---|")
    for method, runs in encoded(args.out, images, captions):
        cells: dict[str, list[float]] = {}
        for _, _, v, t in runs:
            for name, sim in (("i2t", v @ t.T), ("t2i", t @ v.T)):
                top = sim.argmax(1)
                hit = same[torch.arange(n), top]
                cells.setdefault(name, []).append(hit.float().mean().item())
                cells.setdefault(name + "_share", []).append(
                    sharing[torch.arange(n), top][~hit].float().mean().item()
                )
        row = [
            f"{100 * statistics.fmean(cells[c]):.1f}"
            for c in ("i2t", "i2t_share", "t2i", "t2i_share")
        ]
        print(f"| {method} | {len(runs)} | {row[0]} | {row[1]}% | {row[2]} | {row[3]}% |")


METRICS = {  # column: (evaluation file, metric)
    "zero-shot top-1": ("zeroshot-synthetic.json", "top1"),
    "tail top-1": ("zeroshot-synthetic.json", "tail_top1"),
    "colour top-1": ("zeroshot-synthetic.json", "colour_top1"),
    "shape top-1": ("zeroshot-synthetic.json", "shape_top1"),
    "desc. top-1": ("zeroshot-synthetic_descriptions.json", "top1"),
    "I→T R@1": ("retrieval-synthetic.json", "image_to_text_R@1"),
    "T→I R@1": ("retrieval-synthetic.json", "text_to_image_R@1"),
}


def paired(args: argparse.Namespace) -> None:
    """Per metric, each row's difference to CLIP seed by seed (every method of a seed starts
    from the same initialisation and reads the shards in the same order; the sample order
    within upstream's shuffle buffer is not seeded), its mean ± paired standard error
    ``SD(d) / sqrt(n)``; starred beyond two standard errors."""
    values: dict[str, dict[int, dict[str, float]]] = {}
    for run in sorted(args.out.glob("demo__*__seed*")):
        row, seed = run.name.split("__")[1], int(run.name.rsplit("seed", 1)[1])
        try:
            cells = {
                col: json.loads((run / "evals" / f).read_text())["metrics"][m]
                for col, (f, m) in METRICS.items()
            }
        except (OSError, KeyError):
            continue  # not evaluated yet
        values.setdefault(row, {})[seed] = cells
    base = values.get("clip", {})
    print("| method | seeds | " + " | ".join(f"Δ {c}" for c in METRICS) + " |")
    print("|---|---|" + "---|" * len(METRICS))
    for row, seeds in values.items():
        common = sorted(set(seeds) & set(base))
        if row == "clip" or not common:
            continue
        cells = []
        for col in METRICS:
            d = [100 * (seeds[s][col] - base[s][col]) for s in common]
            mean = statistics.fmean(d)
            if len(d) < 2:  # one seed: no spread to compare with
                cells.append(f"{mean:+.1f}")
                continue
            se = statistics.stdev(d) / len(d) ** 0.5
            cells.append(f"{mean:+.1f} ± {se:.1f}{'*' if abs(mean) > 2 * se else ''}")
        print(f"| {row} | {','.join(map(str, common))} | " + " | ".join(cells) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("analysis", choices=("targets", "agreement", "errors", "paired"))
    parser.add_argument("--data", type=Path, default=Path("data/synthetic"))
    parser.add_argument("--out", type=Path, default=Path("demo-runs"), help="the demo's --out")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--beta", type=float, default=0.5)
    parser.add_argument("--samples", type=int, default=256)
    args = parser.parse_args()
    torch.manual_seed(0)
    analyses = {"targets": targets, "agreement": agreement, "errors": errors, "paired": paired}
    analyses[args.analysis](args)


if __name__ == "__main__":
    main()
