#!/usr/bin/env bash
# SoftCLIP Table 10 (App. C.3): ROI aggregation mean / max / min / MHSA; CC3M, 8 epochs, RN50 / ViT-B/32.
# Needs: CC3M shards + ROI features, ImageNet val.
# Usage: recipes/softclip/table10.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table10.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table10 "$@"
