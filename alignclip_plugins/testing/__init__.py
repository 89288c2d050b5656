"""Test kit for plugin authors: reusable checks for soft-label CLIP losses.

``from alignclip_plugins.testing import check_hard_label_limit, make_batch, ...``;
see ``docs/writing-a-soft-label-plugin.md``. ``reference`` holds the direct ``N x N``
implementation of every loss of this project (:mod:`alignclip_plugins.losses.reference`),
to compare a loss built on ours with. Needs torch (and open_clip for the hard-label
check), not pytest.
"""

from alignclip_plugins.losses import reference

from . import loss_checks
from .loss_checks import *  # noqa: F403 (the checks, each named once: loss_checks.__all__)

__all__ = [*loss_checks.__all__, "reference"]
