#!/usr/bin/env bash
# SoftCLIP Table 2: zero-shot on Pets, DTD, Food-101, Flowers-102, SUN397, Caltech-101; RN50 / ViT-B/16 on YFCC15M-V2 (Table 1's runs, trained if missing).
# Needs: YFCC15M-V2 shards + ROI features, the six datasets in clip_benchmark's layout.
# Usage: recipes/softclip/table2.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table2.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table2 "$@"
