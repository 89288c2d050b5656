#!/usr/bin/env bash
# CI smoke of the recipes: every table's script at smoke scale (tiny model, a few CPU steps,
# the embedded synthetic data, stand-in benchmarks), a subset of rows per table chosen so that
# every method and every evaluation task runs at least once; rows shared between tables
# train once. mini/flickr8k makes its own multi-caption data (a small Kaggle-layout folder of
# rendered images with five captions each, converted by `alignclip captions convert`) under
# $ALIGNCLIP_DATA_ROOT/flickr8k-smoke. Writes to $ALIGNCLIP_SMOKE_LOGS (default runs-smoke)
# and $ALIGNCLIP_DATA_ROOT/synthetic (default data/synthetic). Needs bash >= 4. About 24 min
# on a loaded 2-core CPU machine (mini/flickr8k: 8 of them).
#
#   recipes/smoke.sh                 # all tables
#   recipes/smoke.sh softclip/table6 # some tables (their smoke rows)
#   SMOKE_ALL_ROWS=1 recipes/smoke.sh softclip/table6   # every row of the table
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SMOKE=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

# table -> rows run at smoke scale ("" = every row)
declare -A ROWS=(
    [softclip/table1]="clip,softclip"
    [softclip/table2]=""
    [softclip/table3]=""
    [softclip/table4]=""
    [softclip/table5]=""
    [softclip/fig6]=""
    [softclip/table6]=""
    [softclip/table9]="R2R-A2A,A2A-R2R"
    [softclip/table10]="mhsa,mean"
    [softclip/fig4a]="gamma-0.5"
    [softclip/fig4b]="beta-re-0.3,beta-no-re-0.3"
    [softclip/fig8]="clip-0.1667,clip-1"
    [alignclip/supp_table1]=""
    [alignclip/supp_table2]=""
    [alignclip/parsing]="vocab"
    [alignclip/main]=""
    [alignclip/softclip_alignclip]=""
    [mini/flickr8k]=""
    [demo]="clip"
)
ORDER=(softclip/table1 softclip/table2 softclip/table3 softclip/table4 softclip/table5
       softclip/fig6 softclip/table6 softclip/table9 softclip/table10 softclip/fig4a
       softclip/fig4b softclip/fig8 alignclip/supp_table1 alignclip/supp_table2
       alignclip/parsing alignclip/main alignclip/softclip_alignclip mini/flickr8k demo)

tables=("$@")
[[ ${#tables[@]} -gt 0 ]] || tables=("${ORDER[@]}")
declare -a summary=()
failed=0
start=$SECONDS
for table in "${tables[@]}"; do
    if [[ -z ${ROWS[$table]+x} ]]; then
        echo "smoke: unknown table $table (known: ${ORDER[*]})" >&2
        exit 2
    fi
    rows=${ROWS[$table]}
    [[ ${SMOKE_ALL_ROWS:-0} != 0 ]] && rows=""
    t0=$SECONDS
    echo "=== smoke: $table ${rows:+(rows $rows)}"
    if SMOKE_ROWS="$rows" "$here/$table.sh"; then
        summary+=("ok      $((SECONDS - t0))s  $table")
    else
        summary+=("FAILED  $((SECONDS - t0))s  $table")
        failed=1
    fi
done
echo
echo "=== recipe smoke summary ($((SECONDS - start))s)"
printf '%s\n' "${summary[@]}"
exit $failed
