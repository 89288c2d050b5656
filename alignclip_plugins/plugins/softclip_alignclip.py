"""``--plugins softclip_alignclip``: SoftCLIP's and AlignCLIP's soft targets combined.

Activates the ``softclip`` plugin (ROI features, tags, ROI encoder) and the ``alignclip``
plugin (caption object sets, three text domains) and trains with the
``softclip-alignclip`` loss: a convex mix, weight ``--softclip-alignclip-weight``, of the
SoftCLIP target ``(1-β) I + β P(R,R)`` and the Object-IoU target (see
:mod:`alignclip_plugins.losses.softclip_alignclip`). Every ``--softclip-*`` and
``--alignclip-*`` option applies; ``--oiou-beta`` is the Object-IoU target's β.
"""

from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.losses import softclip_alignclip

REQUIRES = ("softclip", "alignclip")


@hookimpl
def register_losses(registry) -> None:
    softclip_alignclip.register(registry, plugin="softclip_alignclip")


@hookimpl
def configure(args) -> None:
    if getattr(args, "loss", None) == softclip_alignclip.LOSS_NAME:
        softclip_alignclip.check_args(args)
