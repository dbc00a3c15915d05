#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" and ".gl"): benchmarks/train_step_check.py, the
# captioner's training step on CUDA against the CPU's, on CartPole frames as they come and through the
# busy camera. Usage: scripts/device-train-check.sh [STEPS]
set -uo pipefail
WHEELS=.whl-run source scripts/device-setup.sh
for flags in "" "--camera"; do
  echo "== train_step_check ${flags:-(every frame)}"
  python3 benchmarks/train_step_check.py --steps "${1:-20}" $flags 2>&1 | grep -v Warning
done
