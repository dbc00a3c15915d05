#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh and ".gl", the GL
# loader packages of /work/.library/device/README.md): install the wheels, check that MuJoCo renders
# through NVIDIA's EGL, time frame generation, train the shipped Meta-World captioner on about
# TRAIN_S seconds of frames, then score it on held-out expert and random-action frames.
#   scripts/device-metaworld-captioner.sh [TRAIN_S] [DATA]
# Everything it writes is in $OUT: rates.json, the checkpoint, train.json, eval.json.
set -uo pipefail
TRAIN_S=${1:-360}
DATA=${2:-env:mw-easy,Meta-World/pick-place-v3}
WORKERS=14  # of 16 cores: the trainer's process keeps one, the system one
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
probe() { python3 -c "import envs; e = envs.make('Meta-World/reach-v3', 64, seed=0); print('frame mean', e.reset()[0]['frame'].mean())"; }
if ! probe; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  probe || { echo "no EGL rendering on this machine"; exit 3; }
fi
python3 benchmarks/metaworld_captions.py --rates --workers $WORKERS --streams 2 --frames 200 --json "$OUT/rates.json" || exit 1
# optimizer steps of 32 streams x 32 frames that the workers can feed in TRAIN_S seconds (80% of their rate)
STEPS=$(python3 -c "import json; r = json.load(open('$OUT/rates.json'))['frames_per_s_per_process']; \
print(min(8000, int(0.8 * r * $WORKERS * $TRAIN_S / 1024)))")
echo "training $STEPS steps"
time python3 -m launch.cli train captioner --data "$DATA" --steps "$STEPS" --device cuda --workers $WORKERS \
  --eval-every 0 --out "$OUT/captioner-metaworld.pt" --json | tee "$OUT/train.json" || exit 1
python3 benchmarks/metaworld_captions.py "$OUT/captioner-metaworld.pt" --tasks "${DATA#env:}" --workers $WORKERS \
  --streams 4 --frames 400 --device cuda --json "$OUT/eval.json"
