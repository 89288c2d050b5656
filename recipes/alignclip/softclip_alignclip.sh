#!/usr/bin/env bash
# Beyond the papers: CLIP, SoftCLIP, Object-IoU and SoftCLIP + Object-IoU targets (softclip_alignclip); CC3M, 8 epochs, RN50.
# Needs: CC3M shards + ROI features, stanza models (object parsing), ImageNet val.
# Usage: recipes/alignclip/softclip_alignclip.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/alignclip/softclip_alignclip.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe alignclip/softclip_alignclip "$@"
