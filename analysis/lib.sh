# Shared helpers of the analysis shell scripts (sourced, not run).

# train_to_end RUN STEPS [causal-wm train arguments...]
# Train RUN for STEPS optimisation steps unless metrics.jsonl already logs the last one; a killed run resumes from
# its last checkpoint.
train_to_end() {
  local run=$1 steps=$2
  shift 2
  grep -qs "^{\"step\": $steps," "$run/metrics.jsonl" && return 0
  local resume=()
  [ -f "$run/checkpoints/last.pt" ] && resume=(--resume)
  causal-wm train --steps "$steps" --out "$run" --quiet "$@" "${resume[@]}"
}
