"""Finding plugins by name: the ``open_clip_train.plugins`` entry points, dotted module paths,
and the plugins each one ``REQUIRES``."""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
from collections.abc import Sequence

from alignclip_plugins import hookspecs

__all__ = [
    "PluginError",
    "installed_plugins",
    "load_plugin",
    "parse_plugin_names",
    "resolve_plugins",
]

BUILTIN_PACKAGE = "alignclip_plugins.plugins"  # the first-party plugins' modules


class PluginError(ValueError):
    """A plugin that cannot be found, loaded or combined with the given options."""


def installed_plugins() -> dict[str, importlib.metadata.EntryPoint]:
    """Plugins registered in the ``open_clip_train.plugins`` entry-point group, by name."""
    eps = importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP)
    return {ep.name: ep for ep in sorted(eps, key=lambda ep: ep.name)}


def parse_plugin_names(value: str | None) -> tuple[str, ...]:
    """``"a, b,a"`` -> ``("a", "b")``."""
    names = [n.strip() for n in (value or "").split(",")]
    return tuple(dict.fromkeys(n for n in names if n))


def load_plugin(name: str):
    """The plugin module for ``name``: an entry point, else an importable dotted module path."""
    installed = installed_plugins()
    if name in installed:
        try:
            return installed[name].load()
        except Exception as exc:
            raise PluginError(
                f"plugin {name!r} ({installed[name].value}) failed to import: {exc}"
            ) from exc
    if name.isidentifier() and importlib.util.find_spec(f"{BUILTIN_PACKAGE}.{name}") is not None:
        # a built-in plugin newer than the installed metadata (an editable install that
        # was not reinstalled): its entry point is missing, its module is not
        return importlib.import_module(f"{BUILTIN_PACKAGE}.{name}")
    if "." in name:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if not name.startswith(exc.name or "\0"):
                raise
    known = ", ".join(installed) or "none"
    raise PluginError(
        f"unknown plugin {name!r}. Installed plugins: {known}. A plugin is found by its name "
        f"in the {hookspecs.ENTRY_POINT_GROUP!r} entry-point group, or by a dotted module path."
    )


def resolve_plugins(names: Sequence[str]) -> list[tuple[str, object]]:
    """``(name, module)`` of each plugin and of the plugins it ``REQUIRES``, in hook order.

    A plugin module may set ``REQUIRES = ("a", "b")``: those plugins are activated with it,
    right after it (unless already named earlier), so ``--plugins x`` means "x and what x
    builds on" and x's loss stays the default.
    """
    resolved: dict[str, object] = {}

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in chain:
            raise PluginError(f"plugins require each other in a cycle: {' -> '.join(chain)}")
        if name in resolved:
            return
        module = load_plugin(name)
        resolved[name] = module
        for required in getattr(module, "REQUIRES", ()):
            try:
                visit(required, (*chain, name))
            except PluginError as exc:
                raise PluginError(f"plugin {name!r} requires {required!r}: {exc}") from exc

    for name in names:
        visit(name, ())
    return list(resolved.items())
