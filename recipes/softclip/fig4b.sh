#!/usr/bin/env bash
# SoftCLIP Fig. 4b: beta sweep with and without the relation-enhanced loss; CC3M, 8 epochs, RN50.
# Needs: CC3M shards + ROI features, ImageNet val.
# Usage: recipes/softclip/fig4b.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/fig4b.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/fig4b "$@"
