#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" and OLD, a tree of an earlier commit made by
# `git archive COMMIT agent kernels launch envs memory viewer pyproject.toml | tar -x -C OLD`):
# `thalamus train captioner --device cuda` as a user runs it, the earlier tree's code and this one's
# alternating, twice; each run's JSON (frames, train_s) in $OUT.
# Usage: scripts/device-train-speed.sh OLD [STEPS] [WORKERS]      (defaults: 600 steps, 14 workers)
set -uo pipefail
OLD=${1:?usage: scripts/device-train-speed.sh OLD [STEPS] [WORKERS]}
STEPS=${2:-600}
WORKERS=${3:-14}
WHEELS=.whl-run source scripts/device-setup.sh
here=$PWD
for run in 1 2; do
  for tree in "$OLD" "$here"; do
    name=$([ "$tree" = "$here" ] && echo new || echo old)
    (cd "$tree" && python3 -m launch.cli train captioner --device cuda --steps "$STEPS" --workers "$WORKERS" \
       --eval-every 0 --out "/tmp/speed-$name.pt" --json) > "$OUT/train-$name-run$run.json" 2> "$OUT/train-$name-run$run.err"
    python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(sys.argv[2], 'run', sys.argv[3], round(m['frames'] / m['train_s']), 'frames/s', m.get('exact'))" \
      "$OUT/train-$name-run$run.json" "$name" "$run" || tail -3 "$OUT/train-$name-run$run.err"
  done
done
