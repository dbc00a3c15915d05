#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh and ".gl", the GL
# loader packages of /work/.library/device/README.md): install the wheels, check that MuJoCo renders
# through NVIDIA's EGL, train the shipped Meta-World captioner (scripts/train_metaworld_captioner.py:
# GEN_S seconds of episodes, then STEPS steps on them), then score it on held-out expert and
# random-action frames (benchmarks/metaworld_captions.py).
#   scripts/device-metaworld-captioner.sh [GEN_S] [STEPS] [DATA] 2>&1 | tee $OUT/log.txt
# Everything it writes is in $OUT: the checkpoint, train.json, eval.json.
set -uo pipefail
GEN_S=${1:-130}
STEPS=${2:-1800}
DATA=${3:-env:mw-easy,Meta-World/pick-place-v3}
WORKERS=16
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
probe() { python3 -c "import envs; e = envs.make('Meta-World/reach-v3', 64, seed=0); print('frame mean', e.reset()[0]['frame'].mean())"; }
if ! probe; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  probe || { echo "no EGL rendering on this machine"; exit 3; }
fi
time python3 scripts/train_metaworld_captioner.py --data "$DATA" --gen-s "$GEN_S" --steps "$STEPS" \
  --workers $WORKERS --device cuda --out "$OUT/captioner-metaworld.pt" --json "$OUT/train.json" || exit 1
python3 benchmarks/metaworld_captions.py "$OUT/captioner-metaworld.pt" --tasks "${DATA#env:}" --workers $WORKERS \
  --streams 4 --frames 400 --device cuda --json "$OUT/eval.json"
