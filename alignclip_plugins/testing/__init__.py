"""Test kit for plugin authors: reusable checks for soft-label CLIP losses.

``from alignclip_plugins.testing import check_hard_label_limit, make_batch, ...``;
see ``docs/writing-a-soft-label-plugin.md``. ``reference`` holds the direct ``N x N``
implementation of every loss of this project (:mod:`alignclip_plugins.losses.reference`),
to compare a loss built on ours with. Needs torch (and open_clip for the hard-label
check), not pytest.
"""

from alignclip_plugins.losses import reference

from .loss_checks import (
    DistCase,
    LossFactory,
    check_autocast_finite,
    check_distributed_equivalence,
    check_hard_label_limit,
    check_loss_matches_targets,
    check_permutation_invariance,
    check_targets_are_distributions,
    loss_and_grads,
    make_batch,
)

__all__ = [
    "DistCase",
    "LossFactory",
    "check_autocast_finite",
    "check_distributed_equivalence",
    "check_hard_label_limit",
    "check_loss_matches_targets",
    "check_permutation_invariance",
    "check_targets_are_distributions",
    "loss_and_grads",
    "make_batch",
    "reference",
]
