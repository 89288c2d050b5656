#!/usr/bin/env bash
# SoftCLIP Fig. 6: averaged top 1-50 text-to-image probabilities on Flickr30K, CLIP vs SoftCLIP; RN50, YFCC15M-V2 (Table 1's runs).
# Needs: YFCC15M-V2 shards + ROI features, Flickr30K.
# Usage: recipes/softclip/fig6.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/fig6.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/fig6 "$@"
