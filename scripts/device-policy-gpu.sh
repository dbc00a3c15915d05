#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl", ".gl" and the demonstrations DEMOS): the sampler
# eager against CUDA graphs (benchmarks/policy_gpu.py on CKPTS), then `thalamus bench policy --device
# cuda` over EPISODES episodes a task with the shipped checkpoints. Usage:
#   scripts/device-policy-gpu.sh runs/mw-easy-50 EPISODES CKPT...
# $OUT gets gpu.json (the side-by-side) and bench-cuda.json.
set -uo pipefail
DEMOS=$1 EPISODES=$2
shift 2
source scripts/device-setup.sh
export PYTHONPATH=$PYTHONPATH:.
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
python3 benchmarks/policy_gpu.py "$DEMOS" "$@" --calls 100 > /tmp/gpu.out 2>&1
grep -v '^{' /tmp/gpu.out | tail -30
grep '^{' /tmp/gpu.out > "$OUT/gpu.json"
[ "$EPISODES" -gt 0 ] || exit 0
timeout 420 python3 -m launch.cli bench policy --checkpoints agent/policy/checkpoints/mw-easy --device cuda \
  --episodes "$EPISODES" --json "$OUT/bench-cuda.json" 2>&1 | grep -v "EGL\|^Meta-World" | tail -30
