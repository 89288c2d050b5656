"""Recipes: the papers' tables as Hydra-composed runs of ``open_clip_train.main``.

``alignclip-launch experiment=softclip/table6 model=RN50`` composes the configs in
``recipes/conf`` (model, data, method, schedule, launch, bench, experiment) into one run per
table row x model x dataset x seed, prepares what the methods need, trains (locally, with
torchrun or as SLURM jobs), evaluates, and records everything next to the runs' logs;
``--dry-run`` prints the exact commands. ``alignclip tables`` renders the results.

Modules: :mod:`.conf` (finding and composing configs), :mod:`.experiment` (rows, grid, run
plans), :mod:`.datasets` (training shards and sample counts), :mod:`.command` (trainer and
evaluation command lines), :mod:`.prepare` (data preparation steps), :mod:`.availability`
(is a method / evaluation installed), :mod:`.runs` (run directories: records, reuse,
resume), :mod:`.launchers` (local, torchrun, SLURM), :mod:`.launch` (the command line).
"""
