#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh and ".gl", the GL
# loader packages of /work/.library/device/README.md): install the wheels, check that MuJoCo renders
# through NVIDIA's EGL, then: one set of
# episodes played for GEN_S seconds, then one captioner per VARIANT trained side by side on it for
# STEPS steps, each scored on held-out expert and random-action frames (benchmarks/metaworld_captions.py)
# twice: on the validation streams (--seed-set 2), which choose the one to ship, and on the benchmark's.
# A VARIANT is NAME=FLAGS of scripts/train_metaworld_captioner.py (seed, model sizes, replay weights), e.g.
#   scripts/device-metaworld-captioner.sh 110 3000 "base=" "wide=--d-model 192 --layers 3" 2>&1 | tee $OUT/log.txt
# $OUT gets NAME.pt and NAME.json ({"train", "validation", "benchmark"}) per variant (the logs go to stdout):
# the device returns 8 files a call.
set -uo pipefail
GEN_S=$1
STEPS=$2
shift 2
DATA=env:mw-easy,Meta-World/pick-place-v3
source scripts/device-setup.sh
probe() { python3 -c "import envs; e = envs.make('Meta-World/reach-v3', 64, seed=0); print('frame mean', e.reset()[0]['frame'].mean())" 2>/dev/null; }
if ! probe; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  probe || { echo "no EGL rendering on this machine"; exit 3; }
fi
EPISODES=/tmp/episodes.npz
python3 scripts/train_metaworld_captioner.py --data "$DATA" --gen-s "$GEN_S" --steps 0 --workers 16 --device cpu \
  --episodes $EPISODES 2>&1 | grep -v "EGL\|Traceback\|File \|Exception ignored" | head -4
for variant in "$@"; do
  name=${variant%%=*}
  python3 scripts/train_metaworld_captioner.py --data "$DATA" --steps "$STEPS" --episodes $EPISODES --device cuda \
    --out "$OUT/$name.pt" --json "/tmp/$name-train.json" ${variant#*=} > "/tmp/$name-train.txt" 2>&1 &
done
wait
for variant in "$@"; do
  name=${variant%%=*}
  echo "== $name: ${variant#*=}"; grep -E "^step .*000 |exact" "/tmp/$name-train.txt" | tail -3
  for set in 2 1; do
    echo "-- seed set $set"
    python3 benchmarks/metaworld_captions.py "$OUT/$name.pt" --tasks "${DATA#env:}" --workers 16 --streams 4 \
      --frames 400 --device cuda --seed-set $set --json "/tmp/$name-$set.json" 2>&1 | grep -v "EGL\|Traceback\|File \|Exception ignored"
  done
  python3 -c "import json, sys; r = lambda f: json.load(open(f)); json.dump({'train': r(sys.argv[1]), 'validation': r(sys.argv[2]), 'benchmark': r(sys.argv[3])}, open(sys.argv[4], 'w'), indent=1)" \
    "/tmp/$name-train.json" "/tmp/$name-2.json" "/tmp/$name-1.json" "$OUT/$name.json"
done
