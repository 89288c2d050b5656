"""A test-only plugin that saves what the loss receives at the first training step.

``--plugins <others>,batch_dump.plugin --dump-first-batch FILE [--dump-step K] [--dump-state]``:
on the first (or K-th, from 0) training forward of each rank, ``FILE`` (rank 0) or
``FILE.rank<R>`` (rank R > 0) gets the model output (features, ``logit_scale``), the batch's
per-sample fields and, with the ``softclip`` plugin, its ``roi_features`` /
``tag_features`` / ``roi_valid`` (recomputed: the hooks of one step each see the model
output without the others' additions); with ``--dump-state`` also the model's weights
before that step's update (``state.<name>``, the CLIP model and its plugin modules). A
test then recomputes the loss of that step with the functional API and compares it with
the logged one. Importable as ``batch_dump.plugin`` from ``tests/support`` (the trainer
runner's directory).
"""

import os

import torch

from alignclip_plugins.hookspecs import hookimpl
from alignclip_plugins.host import unwrap
from alignclip_plugins.stash import StashKey

#: training forwards seen in the run
STEPS = StashKey[int]("batch_dump: training forwards")


@hookimpl
def octrain_add_arguments(parser):
    parser.add_argument("--dump-first-batch", default=None, metavar="FILE")
    parser.add_argument("--dump-step", type=int, default=0, metavar="K")
    parser.add_argument("--dump-state", action="store_true")


def _cpu(tensors: dict) -> dict:
    return {k: v.detach().cpu() for k, v in tensors.items() if isinstance(v, torch.Tensor)}


def dump_path(path: str, rank: int) -> str:
    """The file rank ``rank`` writes for ``--dump-first-batch path``."""
    return path if rank == 0 else f"{path}.rank{rank}"


@hookimpl
def octrain_forward_features(model, batch, model_out, args, stash):
    if not args.dump_first_batch or not torch.is_grad_enabled():
        return None
    path = dump_path(args.dump_first_batch, args.rank)
    if os.path.exists(path):
        return None
    stash[STEPS] = stash.get(STEPS, 0) + 1
    if stash[STEPS] <= args.dump_step:
        return None
    out = {**_cpu(model_out), **{f"batch.{k}": v for k, v in _cpu(batch).items()}}
    if "roi_mask" in batch:
        from alignclip_plugins.plugins.softclip import TAG_PAD_ID
        from alignclip_plugins.plugins.softclip.features import roi_and_tag_features

        pad = stash.get(TAG_PAD_ID, 0)  # the softclip plugin's, from the same run's stash
        out.update(_cpu(roi_and_tag_features(model, batch, args, pad_id=pad)))
    if args.dump_state:
        out.update({f"state.{k}": v for k, v in _cpu(unwrap(model).state_dict()).items()})
    torch.save(out, path)
    return None
