#!/usr/bin/env bash
# On the H200 machine (carry .whl, .gl and the demonstration stores): benchmarks/imitation_columns.py
# once per SPEC, side by side on the one GPU. A SPEC is BENCH:SEED:DEMOS[:EPISODES] (episodes a cell,
# default 20). $OUT/columns.jsonl gets a line a run, $OUT/BENCH-SEED.txt its output.
#   scripts/device-columns.sh mw-easy-imitation:0:runs/mw-easy-50 cw10-imitation:0:runs/cw10-30
set -uo pipefail
source scripts/device-setup.sh
export PYTHONPATH=$PYTHONPATH:.
for spec in "$@"; do
  IFS=: read -r bench seed demos episodes <<< "$spec"
  python3 benchmarks/imitation_columns.py --benchmark "$bench" --seed "$seed" --data "$demos" --device cuda \
    --episodes "${episodes:-20}" --json "$OUT/columns.jsonl" > "$OUT/$bench-$seed.txt" 2>&1 &
done
wait
for f in "$OUT"/*.txt; do echo "== $f"; grep -v "EGL\|^Meta-World\|^{" "$f" | tail -4; done
