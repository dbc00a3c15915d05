#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" from scripts/run-wheels.sh): `thalamus bench
# caption --streams COUNTS --age AGE --device cuda`, ours beside the softmax baseline, every stream AGE
# frames old. Usage: scripts/device-caption-streams.sh [COUNTS] [AGE]
# $OUT gets streams-age<AGE>.json.
set -uo pipefail
COUNTS=${1:-1024,4096,8192,20000} AGE=${2:-18000}
WHEELS=.whl-run source scripts/device-setup.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -m launch.cli bench caption --streams "$COUNTS" --age "$AGE" --device cuda --json "$OUT/streams-age$AGE.json"
