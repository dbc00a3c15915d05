#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh, ".gl" and the
# demonstrations DEMOS, a run store of `thalamus record --expert --tasks mw-easy --episodes 50`):
# `thalamus bench continual --benchmark BENCH` with every method, one process per (method, seed), all on
# the one GPU. Usage:
#   scripts/device-imitation.sh runs/mw-easy-50 mw-easy-imitation FIRST_SEED SEEDS [FLAGS...]
# $OUT gets BENCH-seedFIRST.json and the command's output.
set -uo pipefail
DEMOS=$1 BENCH=$2 FIRST=$3 SEEDS=$4
shift 4
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.used --format=csv,noheader
python3 -m launch.cli bench continual --benchmark "$BENCH" --data "$DEMOS" --device cuda --seed "$FIRST" \
  --seeds "$SEEDS" --workers $(( 5 * SEEDS )) --json "$OUT/$BENCH-seed$FIRST.json" "$@" 2>&1 \
  | grep -v "EGL\|^Meta-World" | tee "$OUT/$BENCH-seed$FIRST.txt"
