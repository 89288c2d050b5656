"""The embedded synthetic dataset: long-tailed coloured shapes with noisy alt-text captions.

``generate(out, SynthConfig(...))`` writes webdataset shards plus metadata (see
``alignclip synth --help``); ``load_manifest(out)`` checks a dataset is complete and returns its
manifest; ``split_urls(out, split)`` lists the shard paths of a split.
"""

from alignclip_plugins.synthetic.config import SPLITS, SynthConfig
from alignclip_plugins.synthetic.generation import generate
from alignclip_plugins.synthetic.manifest import (
    SyntheticDataError,
    SyntheticDataMissing,
    SyntheticOptionsMismatch,
    load_manifest,
    split_urls,
)

__all__ = [
    "SPLITS",
    "SynthConfig",
    "SyntheticDataError",
    "SyntheticDataMissing",
    "SyntheticOptionsMismatch",
    "generate",
    "load_manifest",
    "split_urls",
]
