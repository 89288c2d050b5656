"""Loss registry: a name maps to a factory, listing is free (timm-style).

Plugins fill a registry through the ``register_losses`` hook; the host then adds each
registered loss's CLI options to open_clip_train's parser and builds the chosen one.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass

LossFactory = Callable[[argparse.Namespace], object]
ArgumentAdder = Callable[[argparse.ArgumentParser], None]


@dataclass(frozen=True)
class LossSpec:
    """One registered loss.

    ``factory(args)`` returns an ``nn.Module`` called like upstream's ``ClipLoss``:
    ``loss(**model_out, output_dict=True) -> dict[str, Tensor]`` (keyword arguments it
    does not use must be accepted and ignored). ``add_arguments(parser)`` adds the loss's
    own, namespaced options (e.g. ``--ls-alpha``). ``supports_accum`` says whether the
    loss gives the right result with ``--accum-freq > 1`` (upstream re-runs the forward per
    micro-batch and concatenates cached model outputs).
    """

    name: str
    factory: LossFactory
    add_arguments: ArgumentAdder | None = None
    help: str = ""
    supports_accum: bool = False
    plugin: str = ""


class LossRegistry:
    """Name -> :class:`LossSpec`. Registering a name twice is an error."""

    def __init__(self) -> None:
        self._specs: dict[str, LossSpec] = {}

    def register(
        self,
        name: str,
        factory: LossFactory,
        *,
        add_arguments: ArgumentAdder | None = None,
        help: str = "",
        supports_accum: bool = False,
        plugin: str = "",
    ) -> LossSpec:
        if name in self._specs:
            other = self._specs[name].plugin or "another plugin"
            raise ValueError(f"loss {name!r} is already registered (by {other})")
        spec = LossSpec(name, factory, add_arguments, help, supports_accum, plugin)
        self._specs[name] = spec
        return spec

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._specs)

    def in_order(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._specs)

    def __contains__(self, name: str) -> bool:
        return name in self._specs

    def __len__(self) -> int:
        return len(self._specs)

    def get(self, name: str) -> LossSpec:
        try:
            return self._specs[name]
        except KeyError:
            known = ", ".join(self.names()) or "none (no active plugin registers a loss)"
            raise KeyError(f"unknown loss {name!r}; registered losses: {known}") from None

    def create(self, name: str, args: argparse.Namespace):
        return self.get(name).factory(args)
