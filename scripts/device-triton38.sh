#!/usr/bin/env bash
# On the H200 machine, with Triton 3.8 (scripts/triton38-parts.sh; .triton38-aa carried in one call and
# .triton38-ab with .whl-fla in the next): the kernels of issue 16 where Triton builds the 16-bit backward
# right on Hopper (3.6 does not, and fla refuses its own backward below 3.7.1). benchmarks/backward_sweep.py
# (each launch shape, the 16-bit build among them, checked against the shipped backward), then
# benchmarks/kernels.py --only chunk (checks, forward, forward + backward, fla's beside ours), into
# $OUT/triton38.tgz. For scripts/device-background.sh (about 10 minutes: start, then wait twice).
set -uo pipefail
site=/tmp/t38site
if [ ! -d "$site/triton" ]; then
  mkdir -p "$site" && cat .triton38-aa .triton38-ab | xz -d | tar -x -C "$site" || exit 1
fi
if [ -d .whl-fla ] && [ ! -d "$site/fla" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target "$site" .whl-fla/*.whl
fi
export PYTHONPATH=$site TRITON_CACHE_DIR=/tmp/t38cache PYTHONUNBUFFERED=1
root=$OUT OUT=$OUT/triton38
mkdir -p "$OUT"
python3 -c "import triton, torch; print('triton', triton.__version__, 'torch', torch.__version__)" | tee "$OUT/versions.txt"
python3 benchmarks/backward_sweep.py --json "$OUT/backward-sweep.json" 2>&1 | tee "$OUT/backward-sweep.txt"
python3 benchmarks/kernels.py --only chunk --json "$OUT/kernels-chunk.json" 2>&1 | grep --line-buffered -v Warning \
  | tee "$OUT/kernels-chunk.txt"
tar -czf "$root/triton38.tgz" -C "$root" triton38
