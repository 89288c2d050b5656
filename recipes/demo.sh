#!/usr/bin/env bash
# The embedded demo (what `alignclip demo` runs): CLIP, label smoothing, Object-IoU, AlignCLIP,
# SoftCLIP and SoftCLIP's ablations on the embedded synthetic data, one frozen budget.
# Needs: nothing (the data is generated offline). docs/synthetic.md, docs/results.md.
# Usage: recipes/demo.sh [OVERRIDES...] [--dry-run] [--rows clip,softclip]     SMOKE=1 recipes/demo.sh
#   e.g. "seeds=[0,1,2]" schedule.epochs=24
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration)
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# smoke: the demo's model, data and evaluations, a few optimizer steps
SMOKE_SCALE=(schedule=smoke)
SMOKE_LOOKUP=()
recipe demo "$@"
