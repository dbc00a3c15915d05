#!/usr/bin/env bash
# On the H200 machine (the device tool; no carried wheels needed beyond scripts/device-setup.sh's):
# fine-tune the shipped synthetic and CartPole captioners on frames as a busy live camera delivers them
# (`thalamus train captioner --camera --init …`), side by side on the one GPU. $OUT gets the
# checkpoints and each command's JSON metrics.
# Usage: scripts/device-camera-captioners.sh [STEPS] [WHICH: both|cartpole|synthetic] [WORKERS each] [SEED] [FRAME]
# (SEED picks the training streams: a further fine-tune from a shipped checkpoint takes a new one;
# FRAME, a frame size in pixels for the CartPole captioner, default its checkpoint's).
set -uo pipefail
source scripts/device-setup.sh
steps=${1:-1500} which=${2:-both} workers=${3:-7} seed=${4:-0} frame=${5:-}
ck=agent/perception/checkpoints
if [ "$which" != synthetic ]; then
  python3 -m launch.cli train captioner --data env:CartPole-v1 --camera --init $ck/captioner-cartpole.pt \
    --steps "$steps" --seed "$seed" --device cuda --workers "$workers" ${frame:+--frame-size "$frame"} \
    --out "$OUT/captioner-cartpole.pt" --json \
    > "$OUT/cartpole.json" 2> "$OUT/cartpole.err" &
fi
if [ "$which" != cartpole ]; then
  python3 -m launch.cli train captioner --data synthetic --camera --init $ck/captioner.pt \
    --steps "$steps" --seed "$seed" --device cuda --workers "$workers" --out "$OUT/captioner.pt" --json \
    > "$OUT/synthetic.json" 2> "$OUT/synthetic.err" &
fi
wait
tail -n 3 "$OUT"/*.json "$OUT"/*.err
