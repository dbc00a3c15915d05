#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" from scripts/run-wheels.sh): `thalamus bench
# caption --streams COUNTS --age AGE --device cuda FLAGS...` REPS times (default: bf16, compiled, twice).
# Usage: scripts/device-caption-serve.sh [COUNTS] [AGE] [REPS] [FLAGS...]; $OUT gets streams-<rep>.json.
set -uo pipefail
COUNTS=${1:-12288,20000,24576} AGE=${2:-18000} REPS=${3:-2}
shift $(( $# < 3 ? $# : 3 ))
flags=("$@"); [ ${#flags[@]} -eq 0 ] && flags=(--bf16 --compile)
WHEELS=.whl-run source scripts/device-setup.sh
for rep in $(seq "$REPS"); do
  python3 -m launch.cli bench caption --streams "$COUNTS" --age "$AGE" --device cuda "${flags[@]}" \
    --json "$OUT/streams-$rep.json" 2>&1 | grep -v "Warning\|warnings.warn\|^\s*$" | grep -v "━\|┃\|│\|┏\|┗\|└\|┡"
done
