#!/usr/bin/env bash
# Does the action node find the object an action moves? World models on `pushing` (5 objects) whose actions reach
# the slots only through the action node (`causal-wm train --actions node`), state encoder with a state decoder, 3 seeds.
#
#   bash analysis/action_node.sh            # SEEDS="0 1 2" STEPS=5000 by default; THREADS=1 for parallel copies
#   bash analysis/action_node.sh --smoke    # a tiny end-to-end run in a temporary directory (seconds)
#   bash analysis/action_node.sh --help
#
# Data: data/pushing5_train.h5 and data/pushing5_test.h5 (`causal-wm generate --scene pushing --num-objects 5`, seeds
# 0/1), generated when missing. Runs go to runs/pushing5_node__state__{seed}; finished runs are skipped, a killed
# training resumes. Table: results/action_node_pushing5.{json,md}, from analysis/edge_recovery.py: the share of pushes
# whose top slot by each action-node readout is the pushed object, and the slot edges against `influence`.
set -euo pipefail
cd "$(dirname "$0")/.."
source analysis/lib.sh
STEPS=${STEPS:-5000}
SEEDS=${SEEDS:-0 1 2}
DATA=data RUNS=runs RESULTS=results
EXTRA=() GEN=() EVAL=() SUITE=()
[ -n "${THREADS:-}" ] && EXTRA+=(--threads "$THREADS")
case "${1:-}" in
  --help|-h) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --smoke) smoke_mode action_node; SEEDS="0 1" ;;
  "") ;;
  *) echo "action_node.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
scene_files pushing
runs=()
for seed in $SEEDS; do
  run="$RUNS/pushing5_node__state__${seed}"
  runs+=("$run")
  train_to_end "$run" "$STEPS" --data "$DATA/pushing5_train.h5" --encoder state --actions node --decoder \
    --sparsity 0.05 --seed "$seed" "${EXTRA[@]}"
done
python analysis/edge_recovery.py --runs "${runs[@]}" --data "$DATA/pushing5_test.h5" \
  --out "$RESULTS/action_node_pushing5" --baselines none --title "pushing, action node"
