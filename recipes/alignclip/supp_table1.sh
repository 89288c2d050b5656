#!/usr/bin/env bash
# AlignCLIP supplement Table 1: dataset statistics (pairs, parsed objects, tail objects) via alignclip objects parse (POS) and objects stats; no training.
# Needs: the three datasets' shards, stanza's English models (python -c "import stanza; stanza.download('en')").
# Usage: recipes/alignclip/supp_table1.sh [OVERRIDES...] [--dry-run]     SMOKE=1 recipes/alignclip/supp_table1.sh
# (recipes/lib.sh and docs/recipes.md: overrides, data configuration, torchrun / SLURM)
. "$(dirname "${BASH_SOURCE[0]}")/../lib.sh"
recipe alignclip/supp_table1 "$@"
