#!/usr/bin/env bash
# SoftCLIP Table 6: CLIP; + label smoothing; CLIP + soft loss; + relation-enhanced; + symmetric KL (SoftCLIP); CC3M, 8 epochs, RN50 / ViT-B/32.
# Needs: CC3M shards, CC3M ROI features (soft-loss rows), ImageNet val.
# Usage: recipes/softclip/table6.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table6.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table6 "$@"
