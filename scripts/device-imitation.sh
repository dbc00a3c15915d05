#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl" from scripts/metaworld-wheels.sh, ".gl" and the
# demonstration stores the specs name, made by `thalamus record --expert --tasks mw-easy|cw10`):
# `thalamus bench continual --device cuda` once per SPEC, side by side, one process per (method, seed),
# all on the one GPU. A SPEC is BENCH:FIRST_SEED:SEEDS:METHODS:DEMOS[:FLAGS], FLAGS being that spec's own
# flags joined by commas (--held-out=0,--steps=400); flags after the specs (from the first argument
# starting with -) go to every run. Usage:
#   scripts/device-imitation.sh mw-easy-imitation:0:3:trc,naive,er,derpp,multitask:runs/mw-easy-50
#   scripts/device-imitation.sh cw10-imitation:0:1:trc,derpp:runs/cw10-30 --steps 400 --episodes 5
# $OUT gets one JSON per spec (rewritten as each run ends) and the command's output.
set -uo pipefail
SPECS=()
while [ $# -gt 0 ] && [[ $1 != -* ]]; do SPECS+=("$1"); shift; done
for spec in "${SPECS[@]}"; do
  [[ $spec =~ ^[a-z0-9-]+:[0-9]+:[0-9]+:[a-z,]+:[^:]+(:[^:]+)?$ ]] || {
    echo "not a BENCH:FIRST_SEED:SEEDS:METHODS:DEMOS[:FLAGS] spec: $spec" >&2; exit 2; }
done
source scripts/device-setup.sh
for spec in "${SPECS[@]}"; do
  IFS=: read -r bench first seeds methods demos flags <<< "$spec"
  n=$(( seeds * $(tr , '\n' <<< "$methods" | wc -l) ))
  own=()
  [ -n "$flags" ] && IFS=, read -ra own <<< "$flags"
  name="$bench-${methods//,/-}-seed$first$(tr -d ' =-' <<< "${own[*]:-}" | sed 's/^./-&/')"
  python3 -m launch.cli bench continual --benchmark "$bench" --data "$demos" --device cuda --seed "$first" \
    --seeds "$seeds" --methods "$methods" --workers "$n" --json "$OUT/$name.json" "${own[@]}" "$@" \
    > "$OUT/$name.txt" 2>&1 &
done
wait
for f in "$OUT"/*.txt; do echo "== $f"; grep -v "EGL\|^Meta-World" "$f" | tail -12; done
