#!/usr/bin/env bash
# Optional GPU run of the pixel keypoint recipe (analysis/pixel_keypoints.sh) on a CUDA machine: generates the 5-ball
# springs files, trains the seeds side by side on the one GPU, then evaluates and probes every run on the CPU.
#
#   bash analysis/benchmarks/gpu_keypoints.sh OUT_DIR [STEPS] [SEEDS...]
#
# CWM names the command (default causal-wm; `python3 -m causal_wm.cli` where the package is not installed).
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${1:?usage: gpu_keypoints.sh OUT_DIR [STEPS] [SEEDS...]}
STEPS=${2:-2500}
shift $(( $# >= 2 ? 2 : 1 ))
SEEDS=("${@:-0}")
read -r -a CWM <<< "${CWM:-causal-wm}"
mkdir -p "$OUT/data"
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
start=$SECONDS
for split in train:0 test:1; do
  file="$OUT/data/${split%%:*}.h5"
  [ -f "$file" ] || "${CWM[@]}" generate --scene springs --num-objects 5 --seed "${split##*:}" --workers 8 --out "$file" \
    --quiet &
done
wait
echo "generated in $((SECONDS - start)) s"
start=$SECONDS
for seed in "${SEEDS[@]}"; do
  "${CWM[@]}" train --data "$OUT/data/train.h5" --encoder cnn --keypoints --decoder --recon-weight 10 --sparsity 0.05 \
    --negatives both --actions node --num-slots 6 --seed "$seed" --steps "$STEPS" --threads 2 --device cuda \
    --out "$OUT/kp_${STEPS}__$seed" --quiet > "$OUT/train_$seed.log" 2>&1 &
done
wait
echo "trained ${#SEEDS[@]} runs of $STEPS steps side by side in $((SECONDS - start)) s"
for seed in "${SEEDS[@]}"; do
  run="$OUT/kp_${STEPS}__$seed"
  tail -n 1 "$run/metrics.jsonl"
  ( "${CWM[@]}" evaluate "$run" --data "$OUT/data/test.h5" > "$run/evaluate.log" 2>&1
    "${CWM[@]}" probe "$run" --data "$OUT/data/test.h5" --baselines none --quiet > "$run/probe.log" 2>&1 ) &
done
wait
for seed in "${SEEDS[@]}"; do cat "$OUT/kp_${STEPS}__$seed/evaluate.log" "$OUT/kp_${STEPS}__$seed/probe.log"; done
