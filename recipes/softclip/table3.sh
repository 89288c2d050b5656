#!/usr/bin/env bash
# SoftCLIP Table 3: instance retrieval on revisited Oxford / Paris (E / M / H mAP); RN50, YFCC15M-V2 (Table 1's runs).
# Needs: YFCC15M-V2 shards + ROI features, roxford5k / rparis6k (gnd_*.pkl + jpg/).
# Usage: recipes/softclip/table3.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/softclip/table3.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe softclip/table3 "$@"
