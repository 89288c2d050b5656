#!/usr/bin/env bash
# AlignCLIP supplement Table 2: hard labels vs label smoothing (0.2) vs Object-IoU on plain captions; CC3M, RN50, 32 epochs; ImageNet top-1 / top-5.
# Needs: CC3M shards, stanza's English models (object parsing), ImageNet val.
# Usage: recipes/alignclip/supp_table2.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/alignclip/supp_table2.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe alignclip/supp_table2 "$@"
