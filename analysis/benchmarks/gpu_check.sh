#!/usr/bin/env bash
# Optional GPU check (needs a CUDA GPU; nothing else in the project does): train the cnn and state world models on the
# GPU through the command line, evaluate and probe the GPU-trained runs on the CPU (checkpoints load there), and time a
# whole training step on the GPU against the plain C-SWM step (analysis/benchmarks/train_step.py --device cuda).
#
#   bash analysis/benchmarks/gpu_check.sh DATA_DIR OUT_DIR [STEPS]
#
# DATA_DIR holds train.h5 and test.h5, e.g. from `causal-wm generate --scene springs --num-objects 5 --episodes 300`
# (and --seed 1 --episodes 100 for the test file). STEPS: training steps per run (default 500). CWM names the
# command (default causal-wm; `python3 -m causal_wm.cli` where the package is on PYTHONPATH but not installed).
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${1:?usage: gpu_check.sh DATA_DIR OUT_DIR [STEPS]}
OUT=${2:?usage: gpu_check.sh DATA_DIR OUT_DIR [STEPS]}
STEPS=${3:-500}
read -r -a CWM <<< "${CWM:-causal-wm}"
mkdir -p "$OUT"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, 'on', torch.cuda.get_device_name(0))"
for encoder in cnn state; do
  run="$OUT/$encoder"
  start=$SECONDS
  "${CWM[@]}" train --data "$DATA/train.h5" --encoder "$encoder" --steps "$STEPS" --device cuda --out "$run" --quiet
  echo "$encoder: trained $STEPS steps on the GPU in $((SECONDS - start)) s"
  tail -n 1 "$run/metrics.jsonl"
  "${CWM[@]}" evaluate "$run" --data "$DATA/test.h5"
  "${CWM[@]}" probe "$run" --data "$DATA/test.h5" --baselines none --quiet
done
python3 analysis/benchmarks/train_step.py --device cuda --out "$OUT/train_step_cuda.json"
