"""The hook contract between open_clip_train and its plugins (modelled on pytest's hookspec).

A plugin is a plain module (or package) of ``@hookimpl`` functions, found by name through
the entry-point group ``open_clip_train.plugins``::

    # pyproject.toml of your package
    [project.entry-points."open_clip_train.plugins"]
    my_plugin = "my_package.my_plugin"

and enabled with ``python -m open_clip_train.main --plugins my_plugin ...`` (a dotted
module path works too, without packaging). Implement only the hooks you need, and of each
hook only the parameters you use: pluggy passes a hook implementation the parameters it
names, by name.

Every hook is named ``octrain_<what>`` (for *open_clip train*, as pytest's are
``pytest_<what>``), so that no helper of a plugin module, and no function a plugin imports,
can be taken for a hook, and a hook implementation reads as one where it is written. A
function marked ``@hookimpl`` whose name is not one of the hooks below stops the run when
the plugin is loaded, naming the function.

Module attributes the host reads: ``REQUIRES = ("softclip", "alignclip")`` loads those
plugins with this one, after it (``--plugins x`` then means "x and what x builds on", and
x's loss stays the default); ``CAPTION_CHOICE = "random"`` (with ``"captions"`` among
``REQUIRES``) is the default of ``--caption-choice`` (see
:mod:`alignclip_plugins.plugins.captions`).

Batches are dicts: ``{"image": (B, 3, H, W), "text": (B, L) token ids, <your fields>...}``.

Call order, with the process each hook runs in (the trainer's, on every rank):

1. when the host is built (once per process per set of plugins): ``octrain_register_losses``;
2. while the options are parsed (``open_clip_train.params.parse_args``):
   ``octrain_add_arguments``, then ``octrain_configure``;
3. after the model is built: ``octrain_attach_modules``;
4. when a webdataset pipeline is built (training, and ``--val-data``):
   ``octrain_sample_stages``, ``octrain_collate_fields`` (the stages then run in the loader
   workers);
5. per training step: ``octrain_forward_features``;
6. per evaluation (rank 0): ``octrain_zero_shot_classifier`` (with ``--imagenet-val`` /
   ``--imagenet-v2``), ``octrain_evaluate`` (every epoch, with or without ``--val-data``).

The hooks of steps 2-6 take ``stash``: the run's :class:`~alignclip_plugins.stash.Stash`,
where a plugin keeps the state it needs between hooks (a module global would be shared by
two runs in one process, ``args`` is the run's options). Results of hooks other than the
``firstresult`` one are lists, one entry per plugin in ``--plugins`` order; ``None`` entries
are skipped.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import torch
    from torch import nn

    from alignclip_plugins.registry import LossRegistry
    from alignclip_plugins.stash import Stash

PROJECT = "open_clip_train"
ENTRY_POINT_GROUP = "open_clip_train.plugins"
PREFIX = "octrain_"  # every hook's name starts with it

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: a webdataset stage: an iterator of sample dicts in, an iterable of sample dicts out
Stage = Callable[[Iterator[dict]], Iterable[dict]]
#: a batch field's collation: the per-sample values of the batch -> one tensor
Collate = Callable[[list], "torch.Tensor"]


@hookspec
def octrain_register_losses(registry: LossRegistry) -> None:
    """Register this plugin's losses by name.

    :param registry: this plugin's own :class:`~alignclip_plugins.registry.LossRegistry`:
        ``registry.register(name, factory, add_arguments=..., help=..., supports_accum=...)``.
        Every loss registered in it is attributed to this plugin (error messages, ``alignclip
        plugins``); a loss name another active plugin registers too stops the run, naming
        both plugins.

    Called once when the host of a set of plugins is built, before any option exists: do not
    read options here; ``factory(args)`` reads them when the loss is built. ``--loss NAME``
    chooses among the active plugins' losses; it defaults to the first loss of the first
    plugin in ``--plugins`` order that registers any. The chosen loss replaces upstream's
    ``create_loss(args)``; a loss's ``add_arguments(parser)`` runs after
    :func:`octrain_add_arguments`.
    """


@hookspec
def octrain_add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add this plugin's command-line options.

    :param parser: upstream's ``open_clip_train.params`` parser, holding upstream's options
        and ``--plugins``. Add an argument group named for the plugin, with options named
        for it (``--softclip-rois``, ``--alignclip-objects``) so that plugins combine.

    Called every time the options are parsed, in ``--plugins`` order, before the losses'
    own options and ``--loss`` are added.
    """


@hookspec
def octrain_configure(args: argparse.Namespace, stash: Stash) -> None:
    """Check the parsed options, before anything acts on them.

    :param args: the parsed options, upstream's and every active plugin's.
    :param stash: the run's stash.
    :raises ValueError: with a message naming the option (and file) and what to do; the
        trainer then exits with that message as a usage error.

    Called once per parse, right after it, before the model, the run directory or a log
    file exists. A plugin reading per-sample sidecars of webdataset shards calls
    ``alignclip_plugins.host.require_webdataset(args, name, what)`` here.
    """


@hookspec
def octrain_attach_modules(
    model: nn.Module, args: argparse.Namespace, stash: Stash
) -> dict[str, nn.Module] | None:
    """Auxiliary modules to add to the CLIP model.

    :param model: the CLIP model, built and on its device, not yet DDP-wrapped.
    :param args: the parsed options.
    :param stash: the run's stash.
    :returns: ``{attribute name: module}`` (or None). Each becomes a submodule of the model,
        moved to its device and dtype: optimised, DDP-wrapped, saved in and restored from
        the checkpoints with it (keys ``<name>.*``). A name the model already has stops the
        run.

    Called once per run, after the model is built and before the optimizer is.
    """


@hookspec
def octrain_sample_stages(
    args: argparse.Namespace, is_train: bool, tokenizer: Any, epoch: Any, stash: Stash
) -> list[Stage] | None:
    """webdataset stages run on each sample dict.

    :param args: the parsed options.
    :param is_train: True for the training pipeline, False for ``--val-data``'s.
    :param tokenizer: the model's tokenizer (``open_clip.get_tokenizer``), called as
        ``tokenizer(list of str) -> (n, context) int64``.
    :param epoch: the pipeline's shared epoch (upstream's ``SharedEpoch``):
        ``epoch.get_value()`` is the current epoch, also inside loader workers and after
        ``--resume``; None when the caller has none. Take it only if your stage draws
        per-epoch randomness.
    :param stash: the run's stash (trainer process; the stages themselves run in the loader
        workers and must not hold it: keep what they need in the stage objects).
    :returns: stages (or None), run in ``--plugins`` order (the ``captions`` plugin's first).

    Called once per pipeline, in the trainer's process. A sample then holds ``image``
    (PIL), ``text`` (str), ``__key__``, ``__url__`` (the shard) and the tar's other members.
    Stages may add fields (read from the sample or from sidecar files) or rewrite ``text``;
    image preprocessing and tokenisation follow. With ``--plugins captions`` active its stage
    runs first: ``text`` is then the chosen caption and the sample has ``caption_count``
    (its number of captions) and ``caption_index`` (the chosen one; None for
    ``--caption-choice all``).
    """


@hookspec
def octrain_collate_fields(
    args: argparse.Namespace, is_train: bool, stash: Stash
) -> dict[str, Collate] | None:
    """Per-sample fields to keep in the batch, and how to collate each.

    :param args: the parsed options.
    :param is_train: True for the training pipeline, False for ``--val-data``'s.
    :param stash: the run's stash.
    :returns: ``{field: collate(list of the batch's values) -> Tensor}`` (or None). A field
        another plugin collates too, or ``image`` / ``text``, stops the run.

    Called once per pipeline, after :func:`octrain_sample_stages`. The collators run in the
    loader workers (they are pickled with the pipeline).
    """


@hookspec
def octrain_forward_features(
    model: nn.Module, batch: dict, model_out: dict, args: argparse.Namespace, stash: Stash
) -> dict[str, Any] | None:
    """Extra loss inputs for this training step.

    :param model: the model, possibly DDP-wrapped (``alignclip_plugins.host.unwrap(model)``
        is the CLIP model, with the attached modules).
    :param batch: the batch on the device: ``image``, ``text`` and the collated fields.
    :param model_out: upstream's model output (``image_features``, ``text_features``,
        ``logit_scale``, ...), without the other plugins' additions.
    :param args: the parsed options.
    :param stash: the run's stash.
    :returns: ``{name: value}`` (or None), merged into the model output the loss receives;
        a name already there stops the run. Tensors' first dimension is the batch
        (upstream's gradient accumulation concatenates them); batch fields the loss needs
        (object ids) are passed the same way.

    Called per step in the training step, under autocast, after ``model(image, text)``;
    with ``--accum-freq > 1`` also without gradient for the cached micro-batches
    (``torch.is_grad_enabled()`` is False then).
    """


@hookspec(firstresult=True)
def octrain_zero_shot_classifier(
    model: nn.Module,
    tokenizer: Any,
    classnames: list[str],
    templates: list,
    args: argparse.Namespace,
    device: Any,
    stash: Stash,
) -> torch.Tensor | None:
    """Class embeddings for upstream's ImageNet zero-shot evaluation.

    :param model: the CLIP model (unwrapped).
    :param tokenizer: the model's tokenizer.
    :param classnames: the classes, in label order.
    :param templates: upstream's prompt templates (format strings or callables).
    :param args: the parsed options.
    :param device: where to put the embeddings.
    :param stash: the run's stash.
    :returns: ``(D, C)`` L2-normalised class embeddings, or None to leave it to the next
        plugin and finally to upstream's ``build_zero_shot_classifier``.

    ``firstresult``: the first plugin (in ``--plugins`` order) to return a tensor decides;
    the others are not called. Called per evaluation with ``--imagenet-val`` /
    ``--imagenet-v2`` (rank 0).
    """


@hookspec
def octrain_evaluate(
    model: nn.Module,
    data: dict,
    epoch: int,
    args: argparse.Namespace,
    tokenizer: Any,
    stash: Stash,
) -> dict[str, Any] | None:
    """Extra metrics of the epoch.

    :param model: the CLIP model (unwrapped).
    :param data: upstream's data dict (``"train"``, ``"val"``, ... ``DataInfo``).
    :param epoch: the number of epochs trained (upstream's ``completed_epoch``).
    :param args: the parsed options.
    :param tokenizer: the model's tokenizer.
    :param stash: the run's stash: counts summed over the epoch's steps are popped here.
    :returns: ``{metric: value}`` (or None), merged into upstream's metrics and written to
        ``results.jsonl`` with the epoch.

    Called after every epoch on rank 0, with or without ``--val-data``.
    """
