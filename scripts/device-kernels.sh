#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" for the captioner's imports and, to time fla
# beside ours, ".whl-fla" from scripts/fla-wheels.sh): the kernel
# figures of issue 16. benchmarks/kernels.py's checks and chunked timings (call twice: a headline runs twice),
# the captioner training step, block-sparse attention, the one-step kernel, and the backward's
# launch-shape sweep (a process per shape, ~4 min); JSON and logs in $OUT. chunk alone takes ~5 min a
# run on a fresh machine (Triton compiles every kernel first), so one call (600 s) holds chunk or the rest.
# Usage: scripts/device-kernels.sh [PARTS]   PARTS from: chunk train sweep sparse step profile (default: chunk)
# (profile: where a step of `thalamus train captioner --device cuda` goes, benchmarks/train_profile.py)
set -uo pipefail
WHEELS=.whl-run source scripts/device-setup.sh
if [ -d .whl-fla ] && [ ! -f /tmp/site/.installed-fla ]; then  # fla beside ours, where carried (scripts/fla-wheels.sh)
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl-fla/*.whl && touch /tmp/site/.installed-fla
fi
parts=${*:-chunk}
for part in $parts; do
  case $part in
    chunk) python3 benchmarks/kernels.py --only chunk --json "$OUT/kernels-chunk.json" 2>&1 | grep --line-buffered -v Warning \
             | tee "$OUT/kernels-chunk.txt" ;;
    train) python3 benchmarks/kernels.py --only train --json "$OUT/kernels-train.json" 2>&1 | tee "$OUT/kernels-train.txt" ;;
    sweep) python3 benchmarks/backward_sweep.py --json "$OUT/backward-sweep.json" 2>&1 | tee "$OUT/backward-sweep.txt" ;;
    sparse) python3 benchmarks/kernels.py --only sparse --json "$OUT/kernels-sparse.json" 2>&1 | tee "$OUT/kernels-sparse.txt" ;;
    step) python3 benchmarks/kernels.py --only step --json "$OUT/kernels-step.json" 2>&1 | tee "$OUT/kernels-step.txt" ;;
    profile) python3 benchmarks/train_profile.py --device cuda --workers 14 --out "$OUT/train-profile" 2>&1 | tail -40 ;;
    *) echo "unknown part $part (chunk, train, sweep, sparse, step, profile)" >&2; exit 2 ;;
  esac
done
