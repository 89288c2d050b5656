#!/usr/bin/env bash
# AlignCLIP: caption objects by POS tagging vs an LLM (and vocabulary match); full AlignCLIP on CC3M, RN50, 32 epochs.
# Needs: CC3M shards, stanza models (pos), an LLM endpoint (llm: ALIGNCLIP_LLM_URL / ALIGNCLIP_LLM_MODEL; also for the visual descriptions), ImageNet val + its class descriptions.
# Usage: recipes/alignclip/parsing.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/alignclip/parsing.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
SMOKE_ROWS=${SMOKE_ROWS-vocab}  # offline, the embedded data has vocabulary matching only
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe alignclip/parsing "$@"
