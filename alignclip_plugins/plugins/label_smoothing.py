"""``--plugins label_smoothing``: PyramidCLIP label smoothing (docs/methods.md, "Label smoothing").

Targets ``(1-α) e_i + α/(N-1) (1 - e_i)`` over the global batch in both directions;
``--ls-alpha`` (default and range: :class:`~alignclip_plugins.losses.config.LabelSmoothingConfig`).
Works with upstream's distributed gather, ``--local-loss``, ``--gather-with-grad`` and
``--accum-freq``.
"""

from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.losses.config import LabelSmoothingConfig
from alignclip_plugins.losses.label_smoothing import LabelSmoothingLoss
from alignclip_plugins.plugins.loss_options import (
    LossOption,
    add_loss_options,
    config_from_args,
    dist_kwargs,
    register_loss,
)

PLUGIN = "label_smoothing"
LOSS_OPTIONS = (
    LossOption(
        "--ls-alpha",
        "alpha",
        "Label smoothing α: target 1-α on the pair, α/(N-1) on each negative.",
    ),
)


def make_loss(args) -> LabelSmoothingLoss:
    """``label-smoothing`` from the parsed options (``--ls-alpha``, upstream's distributed ones)."""
    config = config_from_args(
        LabelSmoothingConfig, LOSS_OPTIONS, args, LabelSmoothingLoss.loss_name
    )
    return LabelSmoothingLoss(config, provider=PLUGIN, **dist_kwargs(args))


@hookimpl
def octrain_add_arguments(parser) -> None:
    group = parser.add_argument_group("label-smoothing loss (docs/methods.md)")
    add_loss_options(group, LabelSmoothingConfig, LOSS_OPTIONS)


@hookimpl
def octrain_register_losses(registry) -> None:
    register_loss(
        registry,
        LabelSmoothingLoss,
        make_loss,
        help="PyramidCLIP label smoothing of the CLIP targets (--ls-alpha)",
    )
