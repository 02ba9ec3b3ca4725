#!/usr/bin/env bash
# Train and evaluate the world model with default settings on 5-ball springs, 3 seeds per encoder.
#   bash analysis/world_model_seeds.sh            # writes runs/springs5__{encoder}__{seed}/eval.json
# Data: causal-wm generate defaults with --num-objects 5 (1,000 episodes of 50 frames); test set seed 1.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f data/springs5_train.h5 ] || causal-wm generate --scene springs --num-objects 5 --out data/springs5_train.h5
[ -f data/springs5_test.h5 ] || causal-wm generate --scene springs --num-objects 5 --seed 1 --out data/springs5_test.h5
for encoder in ${ENCODERS:-cnn state}; do
  for seed in ${SEEDS:-0 1 2}; do
    run="runs/springs5__${encoder}__${seed}"
    if [ -f "$run/eval.json" ]; then echo "skip $run (done)"; continue; fi
    if [ -f "$run/checkpoints/last.pt" ]; then resume=--resume; else resume=""; fi
    /usr/bin/time -f "$run train %e s" causal-wm train --data data/springs5_train.h5 --encoder "$encoder" \
      --seed "$seed" --out "$run" --quiet $resume
    causal-wm evaluate "$run" --data data/springs5_test.h5
  done
done
