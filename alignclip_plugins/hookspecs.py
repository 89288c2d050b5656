"""The hook contract between open_clip_train and its plugins.

A plugin is a plain module of ``@hookimpl`` functions, found by name through the
entry-point group ``open_clip_train.plugins``::

    # pyproject.toml of your package
    [project.entry-points."open_clip_train.plugins"]
    my_plugin = "my_package.my_plugin"

and enabled with ``python -m open_clip_train.main --plugins my_plugin ...`` (a dotted
module path works too, without packaging). A plugin that builds on others sets
``REQUIRES = ("softclip", "alignclip")`` in its module: they are then activated with it,
after it. A plugin that needs one caption per sample from multi-caption shards (``txt`` with
one caption a line) requires ``"captions"`` and may set ``CAPTION_CHOICE = "random"``: the
default of ``--caption-choice`` then (see :mod:`alignclip_plugins.plugins.captions`).
Implement only the hooks you need; every hook
receives the parsed ``args`` (upstream's options plus yours). Batches are dicts:
``{"image": (B, 3, H, W), "text": (B, L) token ids, <your fields>...}``.

Call order in one run: ``add_arguments`` and ``register_losses`` while the options are
parsed, ``configure``, ``attach_modules`` after the model is built, ``sample_stages`` and
``collate_fields`` when the webdataset pipelines are built, then per step
``forward_features``, and per evaluation ``zero_shot_classifier`` and ``evaluate``.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pluggy

PROJECT = "open_clip_train"
ENTRY_POINT_GROUP = "open_clip_train.plugins"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

Stage = Callable[[Iterator[dict]], Iterable[dict]]


@hookspec
def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this plugin's options to open_clip_train's parser, namespaced (``--ls-alpha``)."""


@hookspec
def register_losses(registry) -> None:
    """Register losses: ``registry.register(name, factory, add_arguments=..., ...)``.

    ``registry`` is an :class:`alignclip_plugins.registry.LossRegistry`. ``--loss NAME``
    chooses one; it defaults to the first loss of the first plugin in ``--plugins`` that
    registers any. The chosen loss replaces upstream's ``create_loss(args)``.
    """


@hookspec
def configure(args: argparse.Namespace) -> None:
    """Check the parsed options; raise ``ValueError`` with a message naming the option.

    A plugin reading per-sample sidecars of webdataset shards calls
    ``alignclip_plugins.host.require_webdataset(args, name, what)`` here.
    """


@hookspec
def attach_modules(model, args: argparse.Namespace) -> dict[str, Any] | None:
    """Auxiliary ``nn.Module``s to add to the CLIP model, ``{attribute name: module}``.

    They become submodules of the model: optimised, DDP-wrapped and saved in and restored
    from checkpoints with it. Built on the model's device and dtype.
    """


@hookspec
def sample_stages(args: argparse.Namespace, is_train: bool, tokenizer, epoch) -> list[Stage] | None:
    """webdataset stages run on each sample dict, in ``--plugins`` order.

    A sample then holds ``image`` (PIL), ``text`` (str), ``__key__``, ``__url__`` (the
    shard) and the tar's other members. Stages may add fields (read from the sample or
    from sidecar files) or rewrite ``text``; image preprocessing and tokenisation follow.
    With ``--plugins captions`` active its stage runs first: ``text`` is then the chosen
    caption and the sample has ``caption_count`` (its number of captions) and
    ``caption_index`` (the chosen one; None for ``--caption-choice all``).
    ``epoch`` is the pipeline's shared epoch: ``epoch.get_value()`` is the current epoch,
    also inside loader workers and after ``--resume`` (upstream's ``SharedEpoch``; None
    when the caller has none). Take it only if your stage draws per-epoch randomness.
    """


@hookspec
def collate_fields(args: argparse.Namespace, is_train: bool) -> dict[str, Callable] | None:
    """Per-sample fields to keep in the batch: ``{field: collate(list of values) -> Tensor}``."""


@hookspec
def forward_features(model, batch: dict, model_out: dict, args: argparse.Namespace) -> dict | None:
    """Extra loss inputs for this step, merged into the model output the loss receives.

    Runs in the training step under autocast, after ``model(image, text)``. ``model`` may be
    DDP-wrapped (``alignclip_plugins.host.unwrap(model)`` gives the CLIP model). Return
    tensors whose first dimension is the batch (upstream gradient accumulation
    concatenates them); batch fields the loss needs (object ids) are passed the same way.
    """


@hookspec(firstresult=True)
def zero_shot_classifier(
    model, tokenizer, classnames: list[str], templates: list, args: argparse.Namespace, device
):
    """Class embeddings (D, C) for upstream's zero-shot eval, or None to leave it to upstream."""


@hookspec
def evaluate(model, data: dict, epoch: int, args: argparse.Namespace, tokenizer) -> dict | None:
    """Extra metrics, merged into upstream's metrics and ``results.jsonl`` (rank 0 only)."""
