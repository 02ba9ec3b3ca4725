#!/usr/bin/env bash
# Edge recovery of world models that infer one interaction graph per rollout from a context window of observations
# (`causal-wm train --graph-context 10`, an NRI-style edge encoder), state encoder with a state decoder, 3 seeds.
#
#   bash analysis/graph_inference.sh            # SCENES="nri5 springs5" SEEDS="0 1 2" STEPS=5000 by default
#   RECON_WEIGHT=10 bash analysis/graph_inference.sh   # the decoder's losses 10x: runs and tables named *_gc_dec10
#   CONTEXT=25 RECON_WEIGHT=10 GRAPH_FROM=episode SCENES=nri5 bash analysis/graph_inference.sh
#       # a 25-observation context (runs *_gc25_dec10), probed on graphs read from whole episodes (tables *_episode)
#   OVERLAP=1 CONTEXT=25 RECON_WEIGHT=10 STEPS=3000 GRAPH_FROM=episode SCENES=nri5 bash analysis/graph_inference.sh
#       # train with --graph-overlap (the graph read from the whole window, predicted steps included; runs *_ov25_dec10)
#   bash analysis/graph_inference.sh --smoke    # a tiny end-to-end run in a temporary directory (seconds)
#   bash analysis/graph_inference.sh --help
#
# Data: data/{scene}_train.h5 and data/{scene}_test.h5, generated when missing: nri5 by analysis/nri_springs.py
# (seeds 0/1), springs5 and charges5 by `causal-wm generate --num-objects 5 --no-images` (seeds 0/1).
# Runs go to runs/{scene}_gc__state__{seed} (or _gc_dec10); finished runs and probes are skipped, a killed training
# resumes.
# Tables: results/edge_recovery_{scene}_gc.{json,md} (mean and 95% CI over seeds; no baselines, see edge_recovery.py).
set -euo pipefail
cd "$(dirname "$0")/.."
source analysis/lib.sh
STEPS=${STEPS:-5000}
SEEDS=${SEEDS:-0 1 2}
SCENES=${SCENES:-nri5 springs5}
RECON_WEIGHT=${RECON_WEIGHT:-1}
CONTEXT=${CONTEXT:-10}
GRAPH_FROM=${GRAPH_FROM:-window}
OVERLAP=${OVERLAP:-0}
TAG=_gc
[ "$CONTEXT" = 10 ] || TAG=_gc$CONTEXT
[ "$OVERLAP" = 0 ] || TAG=_ov$CONTEXT
[ "$RECON_WEIGHT" = 1 ] || TAG=${TAG}_dec$RECON_WEIGHT
PROBED=
[ "$GRAPH_FROM" = window ] || PROBED=_$GRAPH_FROM
DATA=data RUNS=runs RESULTS=results
EXTRA=()
case "${1:-}" in
  --help|-h) sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --smoke)
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/graph_inference_smoke_XXXX")
    DATA=$tmp RUNS=$tmp RESULTS=$tmp STEPS=3 SEEDS="0 1" SCENES=nri5
    python analysis/nri_springs.py --smoke --seed 0 --out "$DATA/nri5_train.h5" > /dev/null
    python analysis/nri_springs.py --smoke --seed 1 --out "$DATA/nri5_test.h5" > /dev/null
    EXTRA=(--batch-size 4 --rollout-steps 2 --slot-dim 4 --hidden 16 --graph-context 3) ;;
  "") EXTRA=(--graph-context "$CONTEXT") ;;
  *) echo "graph_inference.sh: unknown argument $1 (try --help)" >&2; exit 2 ;;
esac
[ "$OVERLAP" = 0 ] || EXTRA+=(--graph-overlap)
for scene in $SCENES; do
  for split in train:0 test:1; do
    file="$DATA/${scene}_${split%%:*}.h5" seed=${split##*:}
    [ -f "$file" ] && continue
    case $scene in
      nri5) python analysis/nri_springs.py --seed "$seed" --out "$file" ;;
      springs5|charges5) causal-wm generate --scene "${scene%5}" --num-objects 5 --no-images --seed "$seed" --out "$file" ;;
      *) echo "graph_inference.sh: no recipe for scene $scene" >&2; exit 2 ;;
    esac
  done
  runs=()
  for seed in $SEEDS; do
    run="$RUNS/${scene}${TAG}__state__${seed}"
    runs+=("$run")
    train_to_end "$run" "$STEPS" --data "$DATA/${scene}_train.h5" --encoder state --decoder --sparsity 0.05 \
      --recon-weight "$RECON_WEIGHT" --negatives both --seed "$seed" "${EXTRA[@]}"
  done
  python analysis/edge_recovery.py --runs "${runs[@]}" --data "$DATA/${scene}_test.h5" \
    --out "$RESULTS/edge_recovery_${scene}${TAG}${PROBED}" --baselines none --graph-from "$GRAPH_FROM" \
    --title "${scene}, graph context"
done
