"""Run ``open_clip_train.main`` with webdataset's sample shuffle seeded.

Upstream seeds its sample shuffle buffer from pid and time, so two runs never see the same
order. The tests compare runs (patched vs unpatched upstream) and launch both through this
runner, which gives the buffer a fixed seed and changes nothing else.
"""

import random
import runpy

import webdataset
import webdataset.filters as filters


def _seeded_shuffle(data, bufsize=1000, initial=100, rng=None, handler=None):
    return filters._shuffle(data, bufsize, initial, rng or random.Random(0), handler)


webdataset.shuffle = filters.shuffle = filters.pipelinefilter(_seeded_shuffle)
runpy.run_module("open_clip_train.main", run_name="__main__", alter_sys=True)
