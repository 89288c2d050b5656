"""The base of the ``nn.Module`` losses: upstream ``ClipLoss``'s call and distributed options.

A loss module is called like ``open_clip.loss.ClipLoss`` (``loss(image_features,
text_features, logit_scale, output_dict=..., **model_outputs)``), gathers its per-sample
inputs across ranks with upstream's semantics, lays them out for ``local_loss`` or the
global batch and evaluates its plan on the row-block engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import torch
from torch import Tensor, nn

from ._engine import Layout, Plan, run_plan
from .distributed import gather_features, gather_object_ids

__all__ = ["MissingLossInputError", "SoftLabelLoss"]


class MissingLossInputError(KeyError):
    """A loss input expected in the model output is missing."""

    def __str__(self) -> str:  # KeyError would quote the whole message
        return str(self.args[0])


def _is_id_sets(t: Tensor) -> bool:
    return t.dim() == 2 and not t.dtype.is_floating_point and t.dtype != torch.bool


class SoftLabelLoss(nn.Module):
    """Base of the soft-label losses. Subclasses set :attr:`config_class` and implement
    :meth:`terms`.

    ``config`` (an instance of :attr:`config_class`) and ``options`` (its fields as
    keywords, replacing the config's) give the loss's options; the other keywords are
    upstream ``ClipLoss``'s. ``chunk_rows`` fixes the rows of one block (default: blocks of
    2**26 elements). ``provider`` names the plugin that puts the loss's extra inputs in
    the model output, for error messages (default: the built-in plugin of each input,
    :attr:`providers`).
    """

    #: name of the loss, for messages (the plugin registers it under this name)
    loss_name: str = ""
    #: the loss's options (a :class:`.config.LossConfig`), or None for none
    config_class: type | None = None
    #: extra input -> the built-in plugin that provides it (for error messages)
    providers: Mapping[str, str] = {}

    def __init__(
        self,
        config=None,
        *,
        local_loss: bool = False,
        gather_with_grad: bool = False,
        cache_labels: bool = False,
        rank: int = 0,
        world_size: int = 1,
        use_horovod: bool = False,
        chunk_rows: int | None = None,
        provider: str | None = None,
        **options,
    ) -> None:
        super().__init__()
        if self.config_class is not None:
            self.config = self.config_class.resolve(config, options)
        elif config is not None or options:
            raise TypeError(f"{type(self).__name__} takes no options, got {sorted(options)}")
        self.local_loss = local_loss
        self.gather_with_grad = gather_with_grad
        self.cache_labels = cache_labels  # accepted for ClipLoss compatibility; nothing to cache
        self.rank = rank
        self.world_size = world_size
        self.use_horovod = use_horovod
        self.chunk_rows = chunk_rows
        self.provider = provider

    # -- the call -----------------------------------------------------------------------

    def forward(
        self,
        image_features: Tensor,
        text_features: Tensor,
        logit_scale: Tensor,
        logit_bias: Tensor | None = None,
        output_dict: bool = False,
        **extra,
    ):
        """Features (n, D) per rank, L2-normalised; ``logit_scale`` = exp'ed multiplier.

        Returns the 0-d loss, or with ``output_dict`` ``{"<term>_loss": value}``.
        ``logit_bias`` (SigLIP) shifts every logit of a row equally and so cannot change a
        softmax loss: it is accepted and ignored, as are extra model outputs not used.
        """
        terms = self.terms(image_features, text_features, logit_scale, extra)
        if output_dict:
            return {f"{k}_loss": v for k, v in terms.items()}
        return torch.stack(list(terms.values())).sum()

    def terms(
        self, image_features: Tensor, text_features: Tensor, logit_scale: Tensor, extra: dict
    ) -> dict[str, Tensor]:  # pragma: no cover - abstract
        """The weighted loss terms ``{name: 0-d}`` whose sum is the loss."""
        raise NotImplementedError

    @property
    def options(self) -> dict:
        """The loss's options as a dict (its config's fields)."""
        config = getattr(self, "config", None)
        return {} if config is None else config.as_dict()

    def extra_repr(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.options.items())
        return f"{opts}, local_loss={self.local_loss}, world_size={self.world_size}".lstrip(", ")

    # -- inputs -------------------------------------------------------------------------

    def require(self, extra: dict, key: str) -> Tensor:
        """``extra[key]``, or an error naming the key and the plugin that should add it."""
        value = extra.get(key)
        if value is None:
            who = self.provider or self.providers.get(key)
            source = f"the {who!r} plugin" if who else "a plugin"
            have = ", ".join(sorted(k for k, v in extra.items() if v is not None)) or "none"
            raise MissingLossInputError(
                f"loss {self.loss_name!r} needs {key!r} in the model output; it is added by "
                f"{source} (is it in --plugins and does it run octrain_forward_features?). "
                f"Extra inputs received: {have}"
            )
        if not isinstance(value, Tensor):
            raise TypeError(
                f"loss {self.loss_name!r}: {key!r} must be a tensor, got {type(value).__name__}"
            )
        return value

    def _gather(self, t: Tensor) -> Tensor:
        kw = dict(rank=self.rank, world_size=self.world_size, use_horovod=self.use_horovod)
        if _is_id_sets(t):  # object ids: ranks may pad to different widths
            return gather_object_ids(t, **kw)
        if t.dtype == torch.bool:
            return self._gather(t.to(torch.uint8)).bool()
        return gather_features(
            t, local_loss=self.local_loss, gather_with_grad=self.gather_with_grad, **kw
        )[0]

    def layout(self, inputs: Mapping[str, Tensor]) -> tuple[Layout, list[Tensor]]:
        """Gather the named per-sample ``inputs`` (image and text first) across ranks.

        Returns the :class:`Layout` and tensor list for a plan: global rows and columns,
        or (``local_loss``) this rank's rows against global columns.
        """
        n = next(iter(inputs.values())).shape[0]
        for name, t in inputs.items():
            floating = t.dtype.is_floating_point
            if t.dim() == 0 or t.shape[0] != n or (floating and t.dim() != 2):
                shapes = {k: tuple(v.shape) for k, v in inputs.items()}
                raise ValueError(
                    f"loss {self.loss_name!r}: every input needs one row per sample (features "
                    f"(N, D), object ids (N, M)); {name!r} does not: {shapes}"
                )
        names = list(inputs)
        if self.world_size <= 1:
            return Layout.single(names), list(inputs.values())
        full = [self._gather(t) for t in inputs.values()]
        if not self.local_loss:
            return Layout.single(names), full
        ts: list[Tensor] = []
        slots = []
        for name, local, gathered in zip(names, inputs.values(), full):
            slots.append((name, len(ts), len(ts) + 1))
            ts += [local, gathered]
        return Layout(tuple(slots), offset=self.rank * n), ts

    def evaluate(
        self, plan_fn: Callable[[Layout], Plan], logit_scale: Tensor, inputs: Mapping[str, Tensor]
    ) -> dict[str, Tensor]:
        """Gather ``inputs``, build the plan on their layout and evaluate it."""
        layout, ts = self.layout(inputs)
        return run_plan(plan_fn(layout).chunked(self.chunk_rows), logit_scale, ts)
