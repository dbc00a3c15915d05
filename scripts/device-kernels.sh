#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" for the captioner's imports and, to time fla
# beside ours, ".whl-fla" from scripts/fla-wheels.sh): the kernel
# figures of issue 16 in one call. benchmarks/kernels.py's checks and chunked timings twice (a headline
# runs twice), the captioner training step, and the backward's launch-shape sweep; JSON and logs in $OUT.
# Usage: scripts/device-kernels.sh [PARTS]   PARTS from: chunk train sweep sparse step (default: chunk train sweep sparse)
set -uo pipefail
WHEELS=.whl-run source scripts/device-setup.sh
if [ -d .whl-fla ] && [ ! -f /tmp/site/.installed-fla ]; then  # fla beside ours, where carried (scripts/fla-wheels.sh)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-fla/*.whl && touch /tmp/site/.installed-fla
fi
parts=${*:-chunk train sweep sparse}
for part in $parts; do
  case $part in
    chunk) for run in 1 2; do python3 benchmarks/kernels.py --only chunk --json "$OUT/kernels-chunk-run$run.json" \
             2>&1 | grep -v Warning | tee "$OUT/kernels-chunk-run$run.txt"; done ;;
    train) python3 benchmarks/kernels.py --only train --json "$OUT/kernels-train.json" 2>&1 | tee "$OUT/kernels-train.txt" ;;
    sweep) python3 benchmarks/backward_sweep.py --json "$OUT/backward-sweep.json" 2>&1 | tee "$OUT/backward-sweep.txt" ;;
    sparse) python3 benchmarks/kernels.py --only sparse --json "$OUT/kernels-sparse.json" 2>&1 | tee "$OUT/kernels-sparse.txt" ;;
    step) python3 benchmarks/kernels.py --only step --json "$OUT/kernels-step.json" 2>&1 | tee "$OUT/kernels-step.txt" ;;
    *) echo "unknown part $part (chunk, train, sweep, sparse, step)" >&2; exit 2 ;;
  esac
done
