#!/usr/bin/env bash
# SoftCLIP Table 5: zero-shot retrieval on Flickr30K (1K) and MS-COCO (5K); RN50 / ViT-B/16, YFCC15M-V2 (Table 1's runs).
# Needs: YFCC15M-V2 shards + ROI features, Flickr30K and MS-COCO in clip_benchmark's layout.
# Usage: recipes/softclip/table5.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table5.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table5 "$@"
