#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" from scripts/run-wheels.sh): where one batched
# caption step goes (benchmarks/caption_step_parts.py at the largest count), then `thalamus bench caption
# --streams COUNTS --age AGE --device cuda`, ours beside the softmax baseline, every stream AGE frames
# old, in fp32 and under --bf16. Usage: scripts/device-caption-streams.sh [COUNTS] [AGE]
# $OUT gets parts.txt, streams-age<AGE>-fp32.json and streams-age<AGE>-bf16.json.
set -uo pipefail
COUNTS=${1:-1024,4096,8192,20000} AGE=${2:-18000}
WHEELS=.whl-run source scripts/device-setup.sh
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -P benchmarks/caption_step_parts.py --streams "${COUNTS##*,}" 2>&1 | grep -v Warning | tee "$OUT/parts.txt"
for precision in fp32 bf16; do
  flags=(); [ "$precision" = bf16 ] && flags=(--bf16)
  python3 -m launch.cli bench caption --streams "$COUNTS" --age "$AGE" --device cuda "${flags[@]}" \
    --json "$OUT/streams-age$AGE-$precision.json"
done
