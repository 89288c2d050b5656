"""Run ``open_clip_train.main`` with webdataset's sample shuffle seeded.

Upstream seeds its sample shuffle buffer from pid and time, so two runs never see the same
order. The tests compare runs (patched vs unpatched upstream) and launch both through this
runner, which gives the buffer a fixed seed.

Under ``torchrun`` on CPU it also lets upstream wrap the model in DDP: upstream passes
``device_ids=[device]``, which torch accepts for accelerators only (CPU modules need
``device_ids=None``). With ``ALIGNCLIP_TEST_LOSS_LOG=DIR`` each process appends the terms
of every loss it computes, at full precision, to ``DIR/losses-rank<R>.jsonl`` (upstream
logs rank 0's, to 5 digits). Nothing else changes.
"""

import json
import os
import random
import runpy

import torch
import webdataset
import webdataset.filters as filters

from alignclip_plugins import host


def _seeded_shuffle(data, bufsize=1000, initial=100, rng=None, handler=None):
    return filters._shuffle(data, bufsize, initial, rng or random.Random(0), handler)


class _CpuDDP(torch.nn.parallel.DistributedDataParallel):
    def __init__(self, module, device_ids=None, **kwargs):
        if device_ids and all(torch.device(d).type == "cpu" for d in device_ids):
            device_ids = None
        super().__init__(module, device_ids=device_ids, **kwargs)


class _RecordedLoss(torch.nn.Module):
    def __init__(self, loss, path: str) -> None:
        super().__init__()
        self.loss, self.path = loss, path

    def forward(self, *args, **kwargs):
        out = self.loss(*args, **kwargs)
        terms = out if isinstance(out, dict) else {"loss": out}
        with open(self.path, "a") as f:
            f.write(json.dumps({k: float(v) for k, v in terms.items()}) + "\n")
        return out


def _recording(create_loss, directory: str):
    def create(args, **kwargs):
        path = os.path.join(directory, f"losses-rank{args.rank}.jsonl")
        return _RecordedLoss(create_loss(args, **kwargs), path)

    return create


webdataset.shuffle = filters.shuffle = filters.pipelinefilter(_seeded_shuffle)
torch.nn.parallel.DistributedDataParallel = _CpuDDP
if os.environ.get("ALIGNCLIP_TEST_LOSS_LOG"):
    host.create_loss = _recording(host.create_loss, os.environ["ALIGNCLIP_TEST_LOSS_LOG"])
runpy.run_module("open_clip_train.main", run_name="__main__", alter_sys=True)
