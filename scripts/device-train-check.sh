#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" and ".gl"): is the captioner's GPU training
# right? benchmarks/train_step_check.py (the training step on CUDA against the CPU's, every frame and
# through the busy camera), then a CartPole camera fine-tune of FINETUNE steps from the shipped
# checkpoint, whose JSON says how many steps had a gradient that is not finite (skipped_steps) and the
# first; checkpoint and JSON in $OUT. (A 3,000-step fine-tune trained to NaN on 2026-12-05.)
# Usage: scripts/device-train-check.sh [STEPS compared, default 20] [FINETUNE steps, default 1000; 0: none]
set -uo pipefail
WHEELS=.whl-run source scripts/device-setup.sh
for flags in "" "--camera"; do
  echo "== train_step_check ${flags:-(every frame)}"
  python3 benchmarks/train_step_check.py --steps "${1:-20}" $flags 2>&1 | grep -v Warning
done
if [ "${2:-1000}" -gt 0 ]; then
  python3 -m launch.cli train captioner --data env:CartPole-v1 --camera --init agent/perception/checkpoints/captioner-cartpole.pt \
    --steps "${2:-1000}" --seed 4 --device cuda --workers 14 --eval-every 0 --out "$OUT/captioner-cartpole.pt" --json \
    > "$OUT/cartpole.json" 2> "$OUT/cartpole.err"
  tail -n 3 "$OUT/cartpole.err"; cat "$OUT/cartpole.json"
fi
