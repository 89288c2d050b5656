# Shared by the recipe scripts (sourced): run one table's rows, then render the table.
#
#   recipes/<paper>/<table>.sh [OVERRIDES...] [--dry-run] [--rows a,b] [--skip-unavailable]
#
# Overrides are alignclip-launch's (Hydra): model=RN50, launch=slurm, seeds=[0,1,2], ...
# SMOKE=1 runs the rows at smoke scale on the embedded synthetic data (tiny model, a few
# CPU steps, stand-in benchmarks) into $ALIGNCLIP_SMOKE_LOGS (default runs-smoke).
# PYTHON picks the interpreter (default: python). docs/recipes.md explains everything.
set -euo pipefail

recipe() {
    local table=$1
    shift
    local python=${PYTHON:-python}
    local logs=${ALIGNCLIP_LOGS:-runs}
    local -a scale=() lookup=() rows=()
    if [[ ${SMOKE:-0} != 0 ]]; then
        logs=${ALIGNCLIP_SMOKE_LOGS:-runs-smoke}
        scale=(model=tiny data=synthetic schedule=smoke bench=synthetic)
        lookup=(--model tiny --data synthetic)
        # rows that need what the embedded data cannot offer offline are left out
        if [[ -n ${SMOKE_ROWS:-} && " $* " != *" --rows "* ]]; then
            rows=(--rows "$SMOKE_ROWS")
        fi
    fi
    # (${a[@]+"${a[@]}"}: an empty array under `set -u` on any bash)
    "$python" -m alignclip_plugins.recipes.launch "experiment=$table" "logs_root=$logs" \
        ${scale[@]+"${scale[@]}"} ${rows[@]+"${rows[@]}"} "$@"
    case " $* " in
        *" --dry-run "* | *" launch=print "* | *" --prepare-only "*) return 0 ;;
    esac
    "$python" -m alignclip_plugins tables "$table" --logs "$logs" ${lookup[@]+"${lookup[@]}"}
}
