#!/usr/bin/env bash
# SoftCLIP Table 9 (App. C.1): supervision forms R2R/A2A, A2A/R2R, R2A/A2R, A2R/R2A; CC3M, 8 epochs, RN50.
# Needs: CC3M shards + ROI features, ImageNet val.
# Usage: recipes/softclip/table9.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table9.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table9 "$@"
