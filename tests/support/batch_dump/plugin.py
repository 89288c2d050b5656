"""A test-only plugin that saves what the loss receives at the first training step.

``--plugins <others>,batch_dump.plugin --dump-first-batch FILE [--dump-step K]``: on the
first (or K-th, from 0) training forward of rank 0, ``FILE`` gets the model output (features, ``logit_scale``), the batch's
per-sample fields and, with the ``softclip`` plugin, its ``roi_features`` /
``tag_features`` / ``roi_valid`` (recomputed: the hooks of one step each see the model
output without the others' additions). A test then recomputes the loss of that step with
the functional API and compares it with the logged one. Importable as ``batch_dump.plugin``
from ``tests/support`` (the trainer runner's directory).
"""

import os

import torch

from alignclip_plugins.hookspecs import hookimpl


@hookimpl
def add_arguments(parser):
    parser.add_argument("--dump-first-batch", default=None, metavar="FILE")
    parser.add_argument("--dump-step", type=int, default=0, metavar="K")


_STEPS = [0]  # training forwards seen (a test-only plugin: one run per process)


def _cpu(tensors: dict) -> dict:
    return {k: v.detach().cpu() for k, v in tensors.items() if isinstance(v, torch.Tensor)}


@hookimpl
def forward_features(model, batch, model_out, args):
    path = args.dump_first_batch
    if not path or not torch.is_grad_enabled() or args.rank != 0 or os.path.exists(path):
        return None
    _STEPS[0] += 1
    if _STEPS[0] <= args.dump_step:
        return None
    out = {**_cpu(model_out), **{f"batch.{k}": v for k, v in _cpu(batch).items()}}
    if "roi_mask" in batch:
        from alignclip_plugins.plugins.softclip import roi_and_tag_features

        out.update(_cpu(roi_and_tag_features(model, batch, args)))
    torch.save(out, path)
    return None
