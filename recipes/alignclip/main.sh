#!/usr/bin/env bash
# AlignCLIP main setting: CLIP vs Object-IoU vs AlignCLIP (Object-IoU + three text domains; description prototypes) on CC3M, CC12M, YFCC15M; RN50, 32 epochs.
# Needs: the three datasets' shards, stanza models, an LLM endpoint (visual descriptions of the objects and of ImageNet's classes), ImageNet val.
# Usage: recipes/alignclip/main.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/alignclip/main.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe alignclip/main "$@"
