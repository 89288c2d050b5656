#!/usr/bin/env bash
# SoftCLIP Table 1: CLIP vs SoftCLIP, ImageNet zero-shot top-1; CC3M / CC12M / YFCC15M-V2 x RN50 / ViT-B/32 / ViT-B/16, 32 epochs (18 runs).
# Needs: the three datasets' shards, their ROI features (SoftCLIP), ImageNet val.
# Usage: recipes/softclip/table1.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table1.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table1 "$@"
