"""``alignclip eval gradcam``: Grad-CAM heatmaps of caption words (SoftCLIP Fig. 5b), every
image under every model in one PNG (the method: :mod:`alignclip_plugins.evaluation.gradcam`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from alignclip_plugins.evaluation.tasks import base
from alignclip_plugins.evaluation.tasks.base import EvalError


def add_arguments(p: argparse.ArgumentParser) -> None:
    base.add_common_arguments(p, data=False)
    p.add_argument("--image", nargs="+", type=Path, required=True, help="image file(s)")
    p.add_argument(
        "--caption", nargs="+", required=True, help="one caption per image (or one for all)"
    )
    p.add_argument(
        "--word", nargs="+", default=[],
        help="words to localise (default: each caption's content words)",
    )  # fmt: skip
    p.add_argument(
        "--target", choices=("word", "context"), default="word",
        help="word: similarity to the word alone; context: caption minus caption without it",
    )  # fmt: skip
    p.add_argument(
        "--word-template", default="{}", help="prompt for --target word, e.g. 'a photo of {}.'"
    )


def run(args: argparse.Namespace) -> None:
    from PIL import Image

    from alignclip_plugins.evaluation import gradcam
    from alignclip_plugins.evaluation.results import format_table

    images, captions = list(args.image), list(args.caption)
    if len(captions) == 1:
        captions *= len(images)
    if len(captions) != len(images):
        raise EvalError(
            f"{len(captions)} --caption values for {len(images)} images: give one or {len(images)}"
        )
    missing = [str(i) for i in images if not i.is_file()]
    if missing:
        raise EvalError(f"image {missing[0]} does not exist")
    words = [list(args.word) or gradcam.content_words(c) for c in captions]
    empty = [c for c, w in zip(captions, words) if not w]
    if empty:
        raise EvalError(f"no content word in caption {empty[0]!r}; pass --word")
    slug = args.dataset_name
    rows, pending, first = [], [], None
    for loaded in base.iter_models(args):
        layer = gradcam.target_layer(loaded.model)
        scores = []
        for path, caption, ws in zip(images, captions, words):
            try:
                pil = Image.open(path).convert("RGB")
            except Exception as e:
                raise EvalError(f"cannot read image {path}: {e}") from e
            x = loaded.preprocess(pil)[None]
            maps, values = [], []
            for w in ws:
                cam, score = gradcam.word_heatmap(
                    loaded.model, loaded.tokenizer, x, caption, w, args.target,
                    args.word_template, layer,
                )  # fmt: skip
                maps.append(gradcam.upsample(cam, tuple(x.shape[-2:])))
                values.append(score)
            view = gradcam.display_image(loaded.preprocess, x[0])
            rows.append(gradcam.HeatmapRow(loaded.label, caption, view, ws, maps, values))
            scores.append({"image": str(path), "caption": caption, "words": ws, "scores": values})
        first = first or base.picture_path(args, "gradcam", slug, loaded)
        pending.append(
            (loaded, {"label": loaded.label, "layer": layer.description, "images": scores})
        )
    png = gradcam.render(rows, first)
    options = {"target": args.target, "word_template": args.word_template}
    for loaded, details in pending:
        base.write(args, "gradcam", slug, loaded, {}, options, details, [png])
    print(f"Grad-CAM ({layer.description}): {png}")
    table = [
        (f"{r.label}: {Path(path).name}", dict(zip(r.words, r.scores)))
        for r, path in zip(rows, images * len(pending))
    ]
    print(f"\nGrad-CAM target scores ({args.target})\n" + format_table(table, percent=False))


TASK = base.Task("Grad-CAM heatmaps of caption words (PNG)", add_arguments, run)
