# Shared by the recipe scripts (sourced): run one table's rows, then render the table.
#
#   recipes/<paper>/<table>.sh [OVERRIDES...] [--dry-run] [--rows a,b] [--skip-unavailable]
#
# Overrides are alignclip-launch's (Hydra): model=RN50, launch=slurm, seeds=[0,1,2], ...
# SMOKE=1 runs the rows at smoke scale on the embedded synthetic data (tiny model, a few
# CPU steps, stand-in benchmarks) into $ALIGNCLIP_SMOKE_LOGS (default runs-smoke).
# PYTHON picks the interpreter (default: python). docs/recipes.md explains everything.
# A script may set, before calling `recipe`: SMOKE_SCALE (its smoke overrides, an array),
# SMOKE_LOOKUP (the matching `alignclip tables` options), EXTRA_TABLES (more tables and
# figures rendered from the same runs) and LOOKUP_OVERRIDES=1 (a table of one model and one
# dataset: a model=... / data=... override is where `alignclip tables` looks the runs up).
set -euo pipefail

recipe() {
    local table=$1
    shift
    local python=${PYTHON:-python}
    local logs=${ALIGNCLIP_LOGS:-runs}
    local -a scale=() lookup=() rows=() tables=("$table")
    if [[ -n ${EXTRA_TABLES+x} ]]; then
        tables+=("${EXTRA_TABLES[@]}")
    fi
    if [[ ${SMOKE:-0} != 0 ]]; then
        logs=${ALIGNCLIP_SMOKE_LOGS:-runs-smoke}
        scale=(model=tiny data=synthetic schedule=smoke bench=synthetic)
        lookup=(--model tiny --data synthetic)
        if [[ -n ${SMOKE_SCALE+x} ]]; then
            scale=("${SMOKE_SCALE[@]}")
            lookup=(${SMOKE_LOOKUP[@]+"${SMOKE_LOOKUP[@]}"})
        fi
        # rows that need what the data cannot offer offline are left out
        if [[ -n ${SMOKE_ROWS:-} && " $* " != *" --rows "* ]]; then
            rows=(--rows "$SMOKE_ROWS")
        fi
    fi
    if [[ ${LOOKUP_OVERRIDES:-0} != 0 ]]; then
        local arg
        for arg in "$@"; do
            case $arg in
                model=*) lookup+=(--model "${arg#model=}") ;;
                data=*) lookup+=(--data "${arg#data=}") ;;
            esac
        done
    fi
    # (${a[@]+"${a[@]}"}: an empty array under `set -u` on any bash)
    "$python" -m alignclip_plugins.recipes.launch "experiment=$table" "logs_root=$logs" \
        ${scale[@]+"${scale[@]}"} ${rows[@]+"${rows[@]}"} "$@"
    local render=("$python" -m alignclip_plugins tables "${tables[@]}" --logs "$logs"
                  ${lookup[@]+"${lookup[@]}"})
    case " $* " in
        *" --dry-run "* | *" launch=print "*)
            echo "# then: ${render[*]}"
            return 0
            ;;
        *" --prepare-only "*) return 0 ;;
    esac
    "${render[@]}"
}
