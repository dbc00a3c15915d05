#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" from scripts/run-wheels.sh): `thalamus run
# --device cuda --steps STEPS --json` on CartPole-v1 with its shipped captioner and with --captioner off,
# alternating, REPS times each. Usage: scripts/device-run-captions.sh [STEPS] [REPS]
# $OUT gets each run's summary (on-1.json, off-1.json, ...) and, in log.txt, what they printed to stderr
# (one file for all: a device call brings back only so many files).
set -uo pipefail
STEPS=${1:-20000} REPS=${2:-2}
WHEELS=.whl-run source scripts/device-setup.sh
nvidia-smi --query-gpu=name --format=csv,noheader
for rep in $(seq "$REPS"); do
  for mode in on off; do
    flags=(); [ "$mode" = off ] && flags=(--captioner off)
    python3 -m launch.cli run --device cuda --steps "$STEPS" "${flags[@]}" --json > "$OUT/$mode-$rep.json" 2>> "$OUT/log.txt"
    python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[2], round(d['steps_per_s']), d.get('caption_lag_steps'), d['captions_missing'])" "$OUT/$mode-$rep.json" "$mode-$rep" || tail -5 "$OUT/log.txt"
  done
done
