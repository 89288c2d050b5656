"""Command-line options of the plugins' losses, built from the loss configs.

Each option stands for one field of a config (:mod:`alignclip_plugins.losses.config`):
its default, its allowed range or choices are the field's, never restated here. A value
out of its range is refused while the options are parsed (an argparse ``type=``), with
the option's name and the range, before a model, a run directory or a log file exists;
options that cannot go together are refused by the plugin's ``octrain_configure`` hook, which
also runs while the options are parsed (:func:`config_from_args`).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields

from alignclip_plugins.losses.config import CHOICES, RANGE, ConfigError, Range

__all__ = [
    "LossOption",
    "add_loss_options",
    "config_from_args",
    "dist_kwargs",
    "in_range",
    "register_loss",
]


@dataclass(frozen=True)
class LossOption:
    """The option ``flag`` sets the config field ``field``; ``help`` without the default."""

    flag: str
    field: str
    help: str

    @property
    def dest(self) -> str:
        return self.flag.lstrip("-").replace("-", "_")

    def for_field(self, name: str) -> LossOption:
        """The same option, setting the field ``name`` of another config."""
        return dataclasses.replace(self, field=name)


def in_range(allowed: Range) -> Callable[[str], float]:
    """An argparse ``type=``: a finite number in ``allowed``, else a usage error."""

    def number(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"must be a number in {allowed}, got {text!r}"
            ) from None
        if value not in allowed:
            raise argparse.ArgumentTypeError(f"must be in {allowed}, got {text}")
        return value

    return number


def _fields(config_class: type) -> dict:
    return {f.name: f for f in fields(config_class)}


def add_loss_options(
    group: argparse._ActionsContainer, config_class: type, options: Sequence[LossOption]
) -> None:
    """Add ``options`` to ``group`` with the defaults and ranges of ``config_class``."""
    known = _fields(config_class)
    for option in options:
        f = known[option.field]
        kw: dict = dict(default=f.default, dest=option.dest)
        if isinstance(f.default, bool):
            kw.update(action=argparse.BooleanOptionalAction, help=option.help)
        elif CHOICES in f.metadata:
            kw.update(choices=f.metadata[CHOICES], help=f"{option.help} (default {f.default})")
        else:
            allowed = f.metadata[RANGE]
            kw.update(
                type=in_range(allowed),
                metavar="X" if math.isinf(allowed.high) else f"[{allowed.low:g}-{allowed.high:g}]",
                help=f"{option.help} (default {f.default:g})",
            )
        group.add_argument(option.flag, **kw)


def _shown(option: LossOption, value) -> str:
    if isinstance(value, bool):
        return option.flag if value else f"--no-{option.flag[2:]}"
    return f"{option.flag} {value}"


def config_from_args(
    config_class: type, options: Sequence[LossOption], args: argparse.Namespace, loss: str
):
    """The ``config_class`` of the parsed options (fields without an option keep their
    defaults). Options that cannot go together raise ``ValueError`` naming them and
    ``--loss loss``."""
    values = {o.field: getattr(args, o.dest) for o in options}
    try:
        return config_class(**values)
    except ConfigError as exc:
        by_field = {o.field: o for o in options}
        given = [_shown(by_field[f], values[f]) for f in exc.fields if f in by_field]
        raise ValueError(f"--loss {loss}: {exc} (given: {', '.join(given)})") from None


def dist_kwargs(args: argparse.Namespace) -> dict:
    """Upstream's distributed options from the parsed args (as ``create_loss`` reads them)."""
    return dict(
        local_loss=bool(args.local_loss),
        gather_with_grad=bool(args.gather_with_grad),
        rank=int(args.rank),
        world_size=int(args.world_size),
        use_horovod=bool(args.horovod),
    )


def register_loss(registry, loss_class: type, factory: Callable, *, help: str) -> None:
    """Register ``factory(args)`` under ``loss_class.loss_name``, with the loss's own
    ``supports_accum`` (whether it is exact under ``--accum-freq > 1``), in the plugin's
    registry (the loss is attributed to the plugin whose registry it is)."""
    registry.register(
        loss_class.loss_name, factory, help=help, supports_accum=loss_class.supports_accum
    )
