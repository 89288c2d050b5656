"""``--plugins softclip_alignclip``: SoftCLIP's and AlignCLIP's soft targets combined
(docs/methods.md, "SoftCLIP + Object-IoU").

Activates the ``softclip`` plugin (ROI features, tags, ROI encoder) and the ``alignclip``
plugin (caption object sets, three text domains) and trains with the
``softclip-alignclip`` loss: a convex mix, weight ``--softclip-alignclip-weight``, of the
SoftCLIP target ``(1-β) I + β P(R,R)`` and the Object-IoU target (see
:mod:`alignclip_plugins.losses.softclip_alignclip`). Every ``--softclip-*`` and
``--alignclip-*`` option applies; ``--oiou-beta`` is the Object-IoU target's β.
"""

from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.losses.config import SoftClipAlignClipConfig
from alignclip_plugins.losses.softclip_alignclip import SoftClipAlignClipLoss
from alignclip_plugins.plugins.alignclip.options import OIOU_BETA
from alignclip_plugins.plugins.loss_options import (
    LossOption,
    add_loss_options,
    config_from_args,
    dist_kwargs,
    register_loss,
)
from alignclip_plugins.plugins.softclip.options import SOFTCLIP_OPTIONS

PLUGIN = "softclip_alignclip"
REQUIRES = ("softclip", "alignclip")

WEIGHT = LossOption(
    "--softclip-alignclip-weight",
    "weight",
    "ω: weight of the SoftCLIP ROI/tag target in the convex mix with the Object-IoU target "
    "(1 = SoftCLIP).",
)
_CONFIG_FIELDS = set(SoftClipAlignClipConfig.__dataclass_fields__)
#: the options the loss reads: its own and those of the plugins it builds on
LOSS_OPTIONS = (
    WEIGHT,
    OIOU_BETA.for_field("iou_beta"),
    *(o for o in SOFTCLIP_OPTIONS if o.field in _CONFIG_FIELDS),
)


def _check_softclip_options(args) -> None:
    if args.softclip_divergence != "kl" or args.softclip_target_grad:
        raise ValueError(
            f"--loss {SoftClipAlignClipLoss.loss_name} supports --softclip-divergence kl "
            "without --softclip-target-grad only"
        )


def make_loss(args) -> SoftClipAlignClipLoss:
    """``softclip-alignclip`` from the parsed options (divergence kl, no target gradient)."""
    _check_softclip_options(args)
    name = SoftClipAlignClipLoss.loss_name
    config = config_from_args(SoftClipAlignClipConfig, LOSS_OPTIONS, args, name)
    return SoftClipAlignClipLoss(config, provider=PLUGIN, **dist_kwargs(args))


@hookimpl
def octrain_add_arguments(parser) -> None:
    group = parser.add_argument_group("softclip-alignclip loss (SoftCLIP + Object-IoU targets)")
    add_loss_options(group, SoftClipAlignClipConfig, (WEIGHT,))


@hookimpl
def octrain_register_losses(registry) -> None:
    register_loss(
        registry,
        SoftClipAlignClipLoss,
        make_loss,
        help="SoftCLIP + AlignCLIP: convex mix of ROI/tag and Object-IoU soft targets",
    )


@hookimpl
def octrain_configure(args) -> None:
    if args.loss == SoftClipAlignClipLoss.loss_name:
        _check_softclip_options(args)
        config_from_args(SoftClipAlignClipConfig, LOSS_OPTIONS, args, args.loss)
