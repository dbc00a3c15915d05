#!/usr/bin/env bash
# On the H200 machine (as scripts/device-metaworld-captioner.sh, whose set-up it shares): one set of
# episodes played for GEN_S seconds, then three captioners trained side by side on it for STEPS steps
# and each scored on held-out expert and random-action frames (benchmarks/metaworld_captions.py):
#   base   the shipped model's sizes and captions, trained longer;
#   wide   d_model 192, 3 layers, wider convs, second difference 8 frames back;
#   settle wide, on captions whose phase changes only once it has held SETTLE frames (a checkout copy
#          with envs.metaworld_captions.SETTLE set, so training, its check and the scoring agree).
#   scripts/device-metaworld-captioner-compare.sh [GEN_S] [STEPS] [SETTLE] 2>&1 | tee $OUT/log.txt
set -uo pipefail
GEN_S=${1:-110}
STEPS=${2:-3000}
SETTLE=${3:-2}
DATA=env:mw-easy,Meta-World/pick-place-v3
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
probe() { python3 -c "import envs; e = envs.make('Meta-World/reach-v3', 64, seed=0); print('frame mean', e.reset()[0]['frame'].mean())"; }
if ! probe; then
  export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
  probe || { echo "no EGL rendering on this machine"; exit 3; }
fi
EPISODES=/tmp/episodes.npz
python3 scripts/train_metaworld_captioner.py --data "$DATA" --gen-s "$GEN_S" --steps 0 --workers 16 --device cpu \
  --episodes $EPISODES > "$OUT/gen.txt" 2>&1; head -3 "$OUT/gen.txt"
rm -rf /tmp/settle && mkdir /tmp/settle && cp -r agent envs kernels memory scripts benchmarks /tmp/settle/
sed -i "s/^SETTLE = 1 /SETTLE = $SETTLE /" /tmp/settle/envs/metaworld_captions.py
grep -n "^SETTLE" /tmp/settle/envs/metaworld_captions.py
WIDE="--d-model 192 --layers 3 --channels 48,96,96,96 --gap 8"
train() {  # NAME DIR ARGS...
  local name=$1 dir=$2; shift 2; mkdir -p "$OUT/$name"
  (cd "$dir" && python3 scripts/train_metaworld_captioner.py --data "$DATA" --steps "$STEPS" --episodes $EPISODES \
    --device cuda --out "$OUT/$name/captioner-metaworld.pt" --json "$OUT/$name/train.json" "$@") > "$OUT/$name/train.txt" 2>&1
}
train base . &
train wide . $WIDE &
train settle /tmp/settle $WIDE &
wait
for name in base wide settle; do
  dir=.; [ $name = settle ] && dir=/tmp/settle
  tail -2 "$OUT/$name/train.txt"
  (cd $dir && python3 benchmarks/metaworld_captions.py "$OUT/$name/captioner-metaworld.pt" --tasks "${DATA#env:}" \
    --workers 16 --streams 4 --frames 400 --device cuda --json "$OUT/$name/eval.json") > "$OUT/$name/eval.txt" 2>&1
  echo "== $name"; grep -E "^all/|exact" "$OUT/$name/eval.txt" | head -20
done
