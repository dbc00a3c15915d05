#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh, ".gl" and the
# demonstrations DEMOS, a run store of `thalamus record --expert --tasks mw-easy --episodes 50`):
# `thalamus bench continual --benchmark BENCH --device cuda` once per SPEC, side by side, one process per
# (method, seed), all on the one GPU. A SPEC is FIRST_SEED:SEEDS:METHODS; flags after the specs (from
# the first argument starting with -) go to every run. Usage:
#   scripts/device-imitation.sh runs/mw-easy-50 mw-easy-imitation 0:3:trc,naive,er,derpp,multitask
#   scripts/device-imitation.sh runs/cw10-30 cw10-imitation 0:1:trc 0:1:derpp --steps 400 --episodes 5
# $OUT gets BENCH-METHODS-seedFIRST.json (rewritten as each run ends) and the command's output.
set -uo pipefail
DEMOS=$1 BENCH=$2
shift 2
SPECS=()
while [ $# -gt 0 ] && [[ $1 != -* ]]; do SPECS+=("$1"); shift; done
for spec in "${SPECS[@]}"; do
  [[ $spec =~ ^[0-9]+:[0-9]+:[a-z,]+$ ]] || { echo "not a FIRST_SEED:SEEDS:METHODS spec: $spec" >&2; exit 2; }
done
for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl || exit 1
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
for spec in "${SPECS[@]}"; do
  IFS=: read -r first seeds methods <<< "$spec"
  n=$(( seeds * $(tr , '\n' <<< "$methods" | wc -l) ))
  name="$BENCH-${methods//,/-}-seed$first"
  python3 -m launch.cli bench continual --benchmark "$BENCH" --data "$DEMOS" --device cuda --seed "$first" \
    --seeds "$seeds" --methods "$methods" --workers "$n" --json "$OUT/$name.json" "$@" > "$OUT/$name.txt" 2>&1 &
done
wait
for f in "$OUT"/*.txt; do grep -v "EGL\|^Meta-World" "$f" | tail -12; done
