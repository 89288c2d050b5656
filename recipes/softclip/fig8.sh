#!/usr/bin/env bash
# SoftCLIP App. C.2 / Fig. 8: CLIP vs SoftCLIP on 1/6 .. 6/6 of YFCC15M-V2 (2.5M .. 15M pairs); RN50, 32 epochs.
# Needs: YFCC15M-V2 shards + ROI features, ImageNet val.
# Usage: recipes/softclip/fig8.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/fig8.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/fig8 "$@"
