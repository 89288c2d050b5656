#!/usr/bin/env bash
# How the demo's side-by-side trainings share the CPU: LANES hard-CLIP trainings of the demo
# model (RN-Demo-64, batch 64, the demo's lr and wd) started together on the embedded data,
# each with one thread and WORKERS data-loader worker processes. Prints the wall time per
# training-epoch (start-up included, as the demo pays it) and the CPU time of every process
# (docs/benchmarks.md, "The demo's wall time"):
#
#   bash bench/demo_lanes.sh DATA LANES WORKERS [EPOCHS [extra trainer options...]]
#   bash bench/demo_lanes.sh data/synthetic 2 1          # the demo's default
#   bash bench/demo_lanes.sh data/synthetic 1 1 2 --plugins softclip --loss softclip \
#       --softclip-rois data/synthetic/rois           # one SoftCLIP run's CPU
set -euo pipefail
if [ $# -lt 3 ]; then sed -n 2,12p "$0"; exit 2; fi
data=$1 lanes=$2 workers=$3 epochs=${4:-3}
shift $(($# < 4 ? $# : 4))
python=${PYTHON:-python}
read -r model shards samples < <("$python" - "$data" <<'PY'
import sys
from pathlib import Path
from alignclip_plugins.model_configs import model_arg
from alignclip_plugins.synthetic import load_manifest
data = Path(sys.argv[1])
train = load_manifest(data)["splits"]["train"]
print(model_arg("RN-Demo-64"), data / train["pattern"], train["num_samples"])
PY
)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
TIMEFORMAT="%R %U %S"
exec 3>&2  # errors of the trainings, past the capture of `time`
timing=$( { time {
  pids=()
  for i in $(seq 1 "$lanes"); do
    OMP_NUM_THREADS=1 "$python" -m open_clip_train.main --model "$model" --train-data "$shards" \
      --train-num-samples "$samples" --dataset-type webdataset --batch-size 64 --epochs "$epochs" \
      --lr 2e-3 --wd 0.1 --precision fp32 --workers "$workers" --seed "$i" --logs "$out" \
      --name "lane$i" --save-frequency 0 "$@" > "$out/lane$i.log" 2>&1 &
    pids+=($!)
  done
  for i in "${!pids[@]}"; do
    wait "${pids[$i]}" || {
      echo "training $((i + 1)) failed:" >&3; tail -5 "$out/lane$((i + 1)).log" >&3; exit 1
    }
  done
} ; } 2>&1 )
read -r wall user sys <<< "$timing"
"$python" -c "
wall, cpu, n, e = $wall, $user + $sys, $lanes, $epochs
print(f'{n} training(s) at once, {$workers} loader worker(s) each, {e} epochs: {wall:.1f} s wall, '
      f'{wall / (n * e):.1f} s per training-epoch; CPU {cpu:.1f} s ({cpu / (n * e):.1f} s per training-epoch)')
"
