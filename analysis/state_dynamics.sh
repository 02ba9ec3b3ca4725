#!/usr/bin/env bash
# The state-encoder recipe that holds the interaction graph: slots carry the one-hot object type (the default), and the
# state decoder's dynamics loss weighs 10x (`--decoder --recon-weight 10 --sparsity 0.05 --negatives both`), 3 seeds
# per scene, then C-SWM evaluation, edge recovery and (springs) the intervention suite.
#
#   bash analysis/state_dynamics.sh            # SCENES="springs charges" SEEDS="0 1 2"; THREADS=1 for parallel copies
#   STEPS=7500 TAG=dec10_lr3h512_s7500 TRAIN_ARGS="--lr 3e-3 --hidden 512" SCENES=springs bash analysis/state_dynamics.sh
#   MASS=0.3,3 STEPS=7500 TAG=dec10_lr3h512_s7500 TRAIN_ARGS="--lr 3e-3 --hidden 512" SCENES=springs bash ...
#   bash analysis/state_dynamics.sh --smoke    # a tiny end-to-end run in a temporary directory (seconds)
#   bash analysis/state_dynamics.sh --help
#
# Data: data/{STEM}_{train,test}.h5 (`causal-wm generate --scene S --num-objects 5`, seeds 0/1; charges without
# images), generated when missing; STEM is {scene}5, or {scene}5_mLO-HI with MASS=LO,HI (masses drawn uniformly
# from [LO, HI], `--set mass=[LO,HI]`; the default is 1 for every ball, so a model never sees a mass change).
# Runs: runs/{STEM}_{TAG}__state__{seed} (TAG default dec10; TRAIN_ARGS adds train flags), finished runs
# skipped, killed ones resumed. Tables: results/edge_recovery_{STEM}_{TAG}.{json,md},
# results/interventions_{STEM}_{TAG}.{json,md} (springs); with SEEDS other than "0 1 2" (e.g. one seed per
# parallel copy) they end in _seedsS1-S2..., so a copy never overwrites the tables of all three seeds.
set -euo pipefail
cd "$(dirname "$0")/.."
source analysis/lib.sh
STEPS=${STEPS:-2500}
SEEDS=${SEEDS:-0 1 2}
SCENES=${SCENES:-springs charges}
TAG=${TAG:-dec10}
TABLE=$TAG
[ "$SEEDS" = "0 1 2" ] || TABLE=${TAG}_seeds${SEEDS// /-}
read -r -a TRAIN_EXTRA <<< "${TRAIN_ARGS:-}"
DATA=data RUNS=runs RESULTS=results
EXTRA=() GEN=() EVAL=() SUITE=()
[ -n "${THREADS:-}" ] && EXTRA+=(--threads "$THREADS")
case "${1:-}" in
  --help|-h) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --smoke) smoke_mode state_dynamics ;;
  "") ;;
  *) echo "state_dynamics.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
NUM='([0-9]+([.][0-9]*)?|[.][0-9]+)'
if [ -n "${MASS:-}" ]; then
  if [[ ! $MASS =~ ^$NUM,$NUM$ ]] || ! awk -F, '{ exit !($1 > 0 && $1 <= $2) }' <<< "$MASS"; then
    echo "state_dynamics.sh: MASS must be LO,HI with 0 < LO <= HI, got $MASS" >&2
    exit 2
  fi
fi
for scene in $SCENES; do
  images=() stem=${scene}5
  [ "$scene" = springs ] || images=(--no-images)
  [ -n "${MASS:-}" ] && stem=${scene}5_m${MASS/,/-} images+=(--set "mass=[$MASS]")
  STEM=$stem scene_files "$scene" "${images[@]}"
  runs=()
  for seed in $SEEDS; do
    run="$RUNS/${stem}_${TAG}__state__${seed}"
    runs+=("$run")
    train_to_end "$run" "$STEPS" --data "$DATA/${stem}_train.h5" --encoder state --decoder --recon-weight 10 \
      --sparsity 0.05 --negatives both --seed "$seed" "${TRAIN_EXTRA[@]}" "${EXTRA[@]}"
    [ -f "$run/eval.json" ] || causal-wm evaluate "$run" --data "$DATA/${stem}_test.h5" "${EVAL[@]}"
  done
  python analysis/edge_recovery.py --runs "${runs[@]}" --data "$DATA/${stem}_test.h5" \
    --out "$RESULTS/edge_recovery_${stem}_${TABLE}" --baselines none --title "$scene, state + type code + dynamics"
  if [ "$scene" = springs ]; then
    python analysis/interventions.py --runs "${runs[@]}" --out "$RESULTS/interventions_${stem}_${TABLE}" "${SUITE[@]}"
  fi
done
