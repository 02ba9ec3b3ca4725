#!/usr/bin/env bash
# Train and evaluate the world model with default settings on 5-ball springs, 3 seeds per encoder.
#
#   bash analysis/world_model_seeds.sh            # writes runs/springs5__{encoder}__{seed}/eval.json
#   bash analysis/world_model_seeds.sh --smoke    # a tiny end-to-end run in a temporary directory (seconds)
#   bash analysis/world_model_seeds.sh --help
#
# Data: causal-wm generate defaults with --num-objects 5 (1,000 episodes of 50 frames); test set seed 1.
# Environment: ENCODERS (default "cnn state"), SEEDS (default "0 1 2"). Evaluated runs are skipped, and a killed
# training resumes from its last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=data RUNS=runs
GEN=() TRAIN=() EVAL=()
case "${1:-}" in
  --help|-h) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --smoke)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/world_model_seeds_smoke_XXXX")
    DATA=$tmp RUNS=$tmp SEEDS=${SEEDS:-0}
    GEN=(--episodes 4 --steps 14 --quiet)
    TRAIN=(--steps 2 --batch-size 4 --rollout-steps 2 --hidden 16)
    EVAL=(--horizons 1,5) ;;
  "") ;;
  *) echo "world_model_seeds.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
[ -f "$DATA/springs5_train.h5" ] || causal-wm generate --scene springs --num-objects 5 --out "$DATA/springs5_train.h5" "${GEN[@]}"
[ -f "$DATA/springs5_test.h5" ] || causal-wm generate --scene springs --num-objects 5 --seed 1 --out "$DATA/springs5_test.h5" "${GEN[@]}"
for encoder in ${ENCODERS:-cnn state}; do
  for seed in ${SEEDS:-0 1 2}; do
    run="$RUNS/springs5__${encoder}__${seed}"
    if [ -f "$run/eval.json" ]; then echo "skip $run (done)"; continue; fi
    if [ -f "$run/checkpoints/last.pt" ]; then resume=--resume; else resume=""; fi
    start=$SECONDS
    causal-wm train --data "$DATA/springs5_train.h5" --encoder "$encoder" --seed "$seed" --out "$run" --quiet \
      "${TRAIN[@]}" $resume
    echo "$run train $((SECONDS - start)) s"
    causal-wm evaluate "$run" --data "$DATA/springs5_test.h5" "${EVAL[@]}"
  done
done
