#!/usr/bin/env bash
# SoftCLIP Table 4: copy detection on Copydays strong (mAP); RN50, YFCC15M-V2 (Table 1's runs).
# Needs: YFCC15M-V2 shards + ROI features, Copydays (original/ + strong/).
# Usage: recipes/softclip/table4.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table4.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table4 "$@"
