"""``--plugins label_smoothing``: PyramidCLIP label smoothing (METHODS.md §2).

Targets ``(1-α) e_i + α/(N-1) (1 - e_i)`` over the global batch in both directions;
``--ls-alpha`` (default 0.2). Works with upstream's distributed gather, ``--local-loss``,
``--gather-with-grad`` and ``--accum-freq``.
"""

from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.losses import label_smoothing


@hookimpl
def register_losses(registry) -> None:
    label_smoothing.register(registry)
