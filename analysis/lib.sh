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

# smoke_mode NAME
# The tiny settings of a script's --smoke run, in a fresh temporary directory: DATA, RUNS and RESULTS point there,
# STEPS=3, SEEDS=0, and tiny-run flags are appended to GEN (generate), EXTRA (train), EVAL (evaluate) and SUITE
# (analysis/interventions.py).
smoke_mode() {
  local tmp
  tmp=$(mktemp -d "${TMPDIR:-/tmp}/$1_smoke_XXXX")
  DATA=$tmp RUNS=$tmp RESULTS=$tmp STEPS=3 SEEDS=0
  GEN+=(--episodes 6 --steps 14 --image-size 32 --influence-steps 0 --workers 1 --quiet)
  EXTRA+=(--batch-size 4 --rollout-steps 2 --slot-dim 4 --hidden 16)
  EVAL+=(--horizons 1,2)
  SUITE+=(--episodes 1 --horizon 2 --no-gcm)
}

# scene_files SCENE [causal-wm generate arguments...]
# The 5-object train (seed 0) and test (seed 1) files $DATA/{STEM}_{train,test}.h5, generated when missing, with
# the given arguments and GEN appended. STEM defaults to {SCENE}5; set it for a variant of the scene.
scene_files() {
  local scene=$1 split file stem=${STEM:-${1}5}
  shift
  for split in train:0 test:1; do
    file="$DATA/${stem}_${split%%:*}.h5"
    [ -f "$file" ] || causal-wm generate --scene "$scene" --num-objects 5 --seed "${split##*:}" --out "$file" \
      "$@" "${GEN[@]}"
  done
}
