"""Loss registry: a name maps to a factory, listing is free (timm-style).

Each plugin fills its own registry through the ``octrain_register_losses`` hook (so that
every loss is attributed to the plugin that registered it); the host merges them into the
run's registry (:meth:`LossRegistry.update`), then adds each registered loss's CLI options to
open_clip_train's parser and builds the chosen one.
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


def _who(plugin: str) -> str:
    return f"plugin {plugin!r}" if plugin else "a registry of no plugin"


class LossRegistry:
    """Name -> :class:`LossSpec`. Registering a name twice is an error.

    ``plugin``: the plugin whose registry this is; every loss registered in it is that
    plugin's (:attr:`LossSpec.plugin`).
    """

    def __init__(self, plugin: str = "") -> None:
        self.plugin = plugin
        self._specs: dict[str, LossSpec] = {}

    def register(
        self,
        name: str,
        factory: LossFactory,
        *,
        add_arguments: ArgumentAdder | None = None,
        help: str = "",
        supports_accum: bool = False,
    ) -> LossSpec:
        """Register ``factory(args)`` as loss ``name`` of this registry's plugin."""
        spec = LossSpec(name, factory, add_arguments, help, supports_accum, self.plugin)
        self._add(spec)
        return spec

    def update(self, other: LossRegistry) -> list[str]:
        """Add the losses of ``other`` (another plugin's registry); their names, in order."""
        for spec in other._specs.values():
            self._add(spec)
        return other.in_order()

    def _add(self, spec: LossSpec) -> None:
        known = self._specs.get(spec.name)
        if known is not None:
            raise ValueError(
                f"loss {spec.name!r} is already registered (by {_who(known.plugin)}); "
                f"{_who(spec.plugin)} registers it again"
            )
        self._specs[spec.name] = spec

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
