#!/usr/bin/env bash
# SoftCLIP Fig. 4a: gamma L(R,A) + (1 - gamma) L(I,T) for gamma in 0 .. 1; CC3M, 8 epochs, RN50.
# Needs: CC3M shards + ROI features, ImageNet val.
# Usage: recipes/softclip/fig4a.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/fig4a.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/fig4a "$@"
