#!/usr/bin/env bash
# The pixel recipe that holds the interaction graph: the cnn encoder with keypoint slots (each object map's centroid,
# velocity and presence, plus the slot index), the keypoint decoder with its colours fixed at the training frames'
# most frequent colours and its dynamics loss weighed 10x, an action node, and one slot per colour of the scene
# (`--keypoints --decoder --fixed-colours --recon-weight 10 --sparsity 0.05 --negatives both --actions node
# --num-slots 6`), 3 seeds on 5-ball springs, then C-SWM evaluation, edge recovery and the intervention suite.
# Nothing reads ground-truth states except the push locations the action node is given. LEARN_COLOURS=1 runs the
# earlier recipe whose decoder colours are learned (runs/springs5_kp__cnn__{seed}, results/*_springs5_kp.*).
# SCENE=charges runs the same recipe on 5-ball charges generated with `--set distinct_colours=true` (six shades, two
# per charge, so that colours tell the balls apart as they do in springs): data, runs and tables named charges5dc.
# STRENGTH=K (charges only) sets the Coulomb constant (`--set strength=K`, default 8000); data, runs and tables are
# then named charges5dc_kK. The median velocity change per frame of a charged ball is 0.06 px/frame at the default
# strength and 0.71 at 80000, against 0.57 for a ball on a spring (README, "Charges from pixels").
# PRECISION=bf16 trains under bfloat16 autocast (`causal-wm train --precision bf16`; README, "Training in
# bfloat16"): runs and tables are then named {stem}_kpfix_bf16.
#
#   bash analysis/pixel_keypoints.sh            # SEEDS="0 1 2" STEPS=6000; THREADS=1 for parallel copies
#   SCENE=charges bash analysis/pixel_keypoints.sh
#   SCENE=charges STRENGTH=80000 bash analysis/pixel_keypoints.sh
#   bash analysis/pixel_keypoints.sh --smoke    # a tiny end-to-end run in a temporary directory (seconds)
#   bash analysis/pixel_keypoints.sh --help
#
# Data: data/{stem}_{train,test}.h5 (`causal-wm generate --scene SCENE --num-objects 5`, seeds 0/1), generated when
# missing; stem springs5, charges5dc or charges5dc_kK. Runs: runs/{stem}_kpfix__cnn__{seed}, finished runs skipped,
# killed ones resumed. Tables: results/edge_recovery_{stem}_kpfix.{json,md} and
# results/interventions_{stem}_kpfix.{json,md}.
set -euo pipefail
cd "$(dirname "$0")/.."
source analysis/lib.sh
STEPS=${STEPS:-6000}
SEEDS=${SEEDS:-0 1 2}
SCENE=${SCENE:-springs}
DATA=data RUNS=runs RESULTS=results
EXTRA=() GEN=() EVAL=() SUITE=()
case $SCENE in
  springs) STEM=springs5 ;;
  charges) STEM=charges5dc GEN+=(--set distinct_colours=true) ;;
  *) echo "pixel_keypoints.sh: SCENE must be springs or charges, got $SCENE" >&2; exit 2 ;;
esac
if [ -n "${STRENGTH:-}" ]; then
  [ "$SCENE" = charges ] || { echo "pixel_keypoints.sh: STRENGTH applies to SCENE=charges only" >&2; exit 2; }
  if [[ ! $STRENGTH =~ ^[0-9]+([.][0-9]+)?$ || $STRENGTH =~ ^[0.]+$ ]]; then
    echo "pixel_keypoints.sh: STRENGTH must be a positive number, got $STRENGTH" >&2
    exit 2
  fi
  STEM=${STEM}_k$STRENGTH GEN+=(--set "strength=$STRENGTH")
fi
NAME=${STEM}_kpfix COLOURS=(--fixed-colours) TITLE="cnn + keypoints + dynamics, fixed colours"
[ -n "${LEARN_COLOURS:-}" ] && NAME=${STEM}_kp COLOURS=() TITLE="cnn + keypoints + dynamics"
[ -n "${THREADS:-}" ] && EXTRA+=(--threads "$THREADS")
case "${PRECISION:-fp32}" in
  fp32) ;;
  bf16) NAME=${NAME}_bf16 TITLE="$TITLE, bf16" EXTRA+=(--precision bf16) ;;
  *) echo "pixel_keypoints.sh: PRECISION must be fp32 or bf16, got $PRECISION" >&2; exit 2 ;;
esac
case "${1:-}" in
  --help|-h) awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
  --smoke) smoke_mode pixel_keypoints ;;
  "") ;;
  *) echo "pixel_keypoints.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
scene_files "$SCENE"
runs=()
for seed in $SEEDS; do
  run="$RUNS/${NAME}__cnn__${seed}"
  runs+=("$run")
  train_to_end "$run" "$STEPS" --data "$DATA/${STEM}_train.h5" --encoder cnn --keypoints --decoder "${COLOURS[@]}" \
    --recon-weight 10 --sparsity 0.05 --negatives both --actions node --num-slots 6 --seed "$seed" "${EXTRA[@]}"
  [ -f "$run/eval.json" ] || causal-wm evaluate "$run" --data "$DATA/${STEM}_test.h5" "${EVAL[@]}"
done
python analysis/edge_recovery.py --runs "${runs[@]}" --data "$DATA/${STEM}_test.h5" \
  --out "$RESULTS/edge_recovery_$NAME" --baselines none --title "$SCENE, pixels: $TITLE"
python analysis/interventions.py --runs "${runs[@]}" --out "$RESULTS/interventions_$NAME" "${SUITE[@]}"
