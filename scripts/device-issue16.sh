#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run", ".gl", ".whl-fla" and ".old-tree", b8ef58b's code made
# by `git archive b8ef58b agent kernels launch envs memory viewer pyproject.toml | tar -x -C .old-tree`): issue 16's
# GPU figures in one job, for scripts/device-background.sh (about 12 minutes: start, then wait twice):
# the chunked forward, forward + backward and checks twice (a headline runs twice), the training step,
# and `thalamus train captioner --device cuda` against b8ef58b's, alternating, twice; all in $OUT/issue16.tgz.
# Usage: scripts/device-background.sh start scripts/device-issue16.sh
set -uo pipefail
mkdir -p "$OUT/run1" "$OUT/run2"
OUT="$OUT/run1" bash scripts/device-kernels.sh chunk train
OUT="$OUT/run2" bash scripts/device-kernels.sh chunk
OUT="$OUT/run2" bash scripts/device-train-speed.sh .old-tree 300
tar -czf "$OUT/issue16.tgz" -C "$OUT" run1 run2  # one file back (a device call returns at most 8)
