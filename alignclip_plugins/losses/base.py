"""Shared plumbing of the ``nn.Module`` losses: options, gather, extra inputs, CLI helpers."""

from __future__ import annotations

import argparse
import functools
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from .distributed import gather_features, gather_object_ids
from .functional import Layout, _Plan, run_plan

__all__ = ["MissingLossInputError", "SoftLabelLoss", "add_options_once", "dist_kwargs"]


class MissingLossInputError(KeyError):
    """A loss input expected in the model output is missing."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


class SoftLabelLoss(nn.Module):
    """Base of the plugin losses: upstream ``ClipLoss``'s distributed options plus a plan.

    Subclasses implement :meth:`plan` and :meth:`inputs`; ``forward`` gathers the inputs
    across ranks, lays them out for ``local_loss`` or global computation and evaluates
    the plan (see :mod:`alignclip_plugins.losses.functional`).
    """

    #: name of the loss in the registry
    loss_name: str = ""

    def __init__(
        self,
        *,
        local_loss: bool = False,
        gather_with_grad: bool = False,
        cache_labels: bool = False,
        rank: int = 0,
        world_size: int = 1,
        use_horovod: bool = False,
        chunk_rows: int | None = None,
        provider: str | None = None,
    ) -> None:
        super().__init__()
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.cache_labels = cache_labels  # accepted for ClipLoss compatibility; nothing to cache
        self.rank = rank
        self.world_size = world_size
        self.use_horovod = use_horovod
        self.chunk_rows = chunk_rows
        self.provider = provider

    # -- inputs -------------------------------------------------------------------------

    def require(self, extra: dict, key: str, plugin: str) -> Tensor:
        """``extra[key]``, or an error naming the key and the plugin that should add it."""
        value = extra.get(key)
        if value is None:
            who = self.provider or plugin
            have = ", ".join(sorted(k for k, v in extra.items() if v is not None)) or "none"
            raise MissingLossInputError(
                f"loss {self.loss_name!r} needs {key!r} in the model output; it is added by "
                f"the {who!r} plugin (is it in --plugins and does it run forward_features?). "
                f"Extra inputs received: {have}"
            )
        if not isinstance(value, Tensor):
            raise TypeError(
                f"loss {self.loss_name!r}: {key!r} must be a tensor, got {type(value).__name__}"
            )
        return value

    def _gather(self, tensors: Sequence[Tensor], ids: Sequence[Tensor] = ()) -> tuple[list, list]:
        kw = dict(rank=self.rank, world_size=self.world_size, use_horovod=self.use_horovod)
        feats = gather_features(
            *tensors, local_loss=self.local_loss, gather_with_grad=self.gather_with_grad, **kw
        )
        sets = [gather_object_ids(t, **kw) for t in ids]
        return feats, sets

    def layout(
        self, feats: Sequence[Tensor], ids: Sequence[Tensor] = ()
    ) -> tuple[Layout, list[Tensor]]:
        """Gather ``feats`` (image, text[, roi, tag[, valid flags]]) and ``ids`` (object ids).

        Returns the :class:`Layout` and tensor list for the plan: global rows and columns,
        or (``local_loss``) local rows against global columns.
        """
        n = feats[0].shape[0]
        for f in feats:
            if f.dim() != 2 or f.shape[0] != n:
                raise ValueError(
                    f"loss {self.loss_name!r}: features must be (N, D) with one row per sample, "
                    f"got shapes {[tuple(g.shape) for g in feats]}"
                )
        for t in ids:
            if t.dim() != 2 or t.shape[0] != n:
                raise ValueError(
                    f"loss {self.loss_name!r}: object ids must be (N, M), got {tuple(t.shape)} for N={n}"
                )
        names = ("img", "txt", "roi", "tag", "valid")[: len(feats)]
        idnames = ("iobj", "tobj")[: len(ids)]
        if self.world_size <= 1:
            ts = list(feats) + list(ids)
            spec = {
                f"{k}_{side}": i for i, k in enumerate(names + idnames) for side in ("rows", "cols")
            }
            return Layout(**spec, offset=0), ts
        gfeats, gids = self._gather(feats, ids)
        if not self.local_loss:
            ts = gfeats + gids
            spec = {
                f"{k}_{side}": i for i, k in enumerate(names + idnames) for side in ("rows", "cols")
            }
            return Layout(**spec, offset=0), ts
        ts = []
        spec = {}
        for k, local, full in zip(names + idnames, list(feats) + list(ids), gfeats + gids):
            spec[f"{k}_rows"] = len(ts)
            ts.append(local)
            spec[f"{k}_cols"] = len(ts)
            ts.append(full)
        return Layout(**spec, offset=self.rank * n), ts

    # -- evaluation ---------------------------------------------------------------------

    def evaluate(
        self,
        plan_fn: Callable[[Layout], _Plan],
        logit_scale: Tensor,
        feats: Sequence[Tensor],
        ids=(),
    ) -> dict[str, Tensor]:
        layout, ts = self.layout(feats, ids)
        plan = plan_fn(layout)
        if self.chunk_rows is not None:
            plan = _Plan(plan.components, plan.directions, chunk_rows=self.chunk_rows)
        return run_plan(plan, logit_scale, ts)

    @staticmethod
    def finish(terms: dict[str, Tensor], output_dict: bool) -> dict[str, Tensor] | Tensor:
        """``{"<term>_loss": value}`` (output_dict) or the total, as upstream's ClipLoss."""
        if output_dict:
            return {f"{k}_loss": v for k, v in terms.items()}
        return torch.stack(list(terms.values())).sum()


def add_options_once(parser: argparse.ArgumentParser, first_option: str, add: Callable) -> None:
    """Call ``add(parser)`` unless ``first_option`` is already defined (shared options)."""
    if first_option in parser._option_string_actions:
        return
    add(parser)


def register_loss(
    registry,
    name: str,
    from_args: Callable,
    *,
    plugin: str | None,
    add_arguments: Callable,
    help: str,
    supports_accum: bool,
) -> None:
    """Register ``name`` -> ``from_args(args, provider=plugin)`` with its options and help."""
    registry.register(
        name,
        functools.partial(from_args, provider=plugin),
        add_arguments=add_arguments,
        help=help,
        supports_accum=supports_accum,
        **({} if plugin is None else {"plugin": plugin}),
    )


def dist_kwargs(args: argparse.Namespace) -> dict:
    """Upstream's distributed options from the parsed args (as ``create_loss`` reads them)."""
    return dict(
        local_loss=bool(getattr(args, "local_loss", False)),
        gather_with_grad=bool(getattr(args, "gather_with_grad", False)),
        rank=int(getattr(args, "rank", 0)),
        world_size=int(getattr(args, "world_size", 1)),
        use_horovod=bool(getattr(args, "horovod", False)),
    )
