#!/usr/bin/env bash
# The pixel recipe that holds the interaction graph: the cnn encoder with keypoint slots (each object map's centroid,
# velocity and presence, plus the slot index), the keypoint decoder with its colours fixed at the training frames'
# most frequent colours and its dynamics loss weighed 10x, an action node, and one slot per colour of the scene
# (`--keypoints --decoder --fixed-colours --recon-weight 10 --sparsity 0.05 --negatives both --actions node
# --num-slots 6`), 3 seeds on 5-ball springs, then C-SWM evaluation, edge recovery and the intervention suite.
# Nothing reads ground-truth states except the push locations the action node is given. LEARN_COLOURS=1 runs the
# earlier recipe whose decoder colours are learned (runs/springs5_kp__cnn__{seed}, results/*_springs5_kp.*).
#
#   bash analysis/pixel_keypoints.sh            # SEEDS="0 1 2" STEPS=6000; THREADS=1 for parallel copies
#   bash analysis/pixel_keypoints.sh --smoke    # a tiny end-to-end run in a temporary directory (seconds)
#   bash analysis/pixel_keypoints.sh --help
#
# Data: data/springs5_{train,test}.h5 (`causal-wm generate --scene springs --num-objects 5`, seeds 0/1), generated
# when missing. Runs: runs/springs5_kpfix__cnn__{seed}, finished runs skipped, killed ones resumed.
# Tables: results/edge_recovery_springs5_kpfix.{json,md}, results/interventions_springs5_kpfix.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
source analysis/lib.sh
STEPS=${STEPS:-6000}
SEEDS=${SEEDS:-0 1 2}
DATA=data RUNS=runs RESULTS=results
EXTRA=() GEN=() EVAL=() SUITE=()
NAME=springs5_kpfix COLOURS=(--fixed-colours) TITLE="cnn + keypoints + dynamics, fixed colours"
[ -n "${LEARN_COLOURS:-}" ] && NAME=springs5_kp COLOURS=() TITLE="cnn + keypoints + dynamics"
[ -n "${THREADS:-}" ] && EXTRA+=(--threads "$THREADS")
case "${1:-}" in
  --help|-h) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --smoke) smoke_mode pixel_keypoints ;;
  "") ;;
  *) echo "pixel_keypoints.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
scene_files springs
runs=()
for seed in $SEEDS; do
  run="$RUNS/${NAME}__cnn__${seed}"
  runs+=("$run")
  train_to_end "$run" "$STEPS" --data "$DATA/springs5_train.h5" --encoder cnn --keypoints --decoder "${COLOURS[@]}" \
    --recon-weight 10 --sparsity 0.05 --negatives both --actions node --num-slots 6 --seed "$seed" "${EXTRA[@]}"
  [ -f "$run/eval.json" ] || causal-wm evaluate "$run" --data "$DATA/springs5_test.h5" "${EVAL[@]}"
done
python analysis/edge_recovery.py --runs "${runs[@]}" --data "$DATA/springs5_test.h5" \
  --out "$RESULTS/edge_recovery_$NAME" --baselines none --title "springs, pixels: $TITLE"
python analysis/interventions.py --runs "${runs[@]}" --out "$RESULTS/interventions_$NAME" "${SUITE[@]}"
