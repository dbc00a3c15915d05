#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run", ".gl", ".whl-fla" and ".old-tree", b8ef58b's code made
# by `git archive b8ef58b agent kernels launch envs memory viewer pyproject.toml | tar -x -C .old-tree`): issue 16's
# GPU figures in one job, for scripts/device-background.sh (about 12 minutes: start, then wait twice):
# the chunked forward, forward + backward and checks twice (a headline runs twice), the training step,
# and `thalamus train captioner --device cuda` against b8ef58b's, alternating, twice; then (issue 15) `thalamus run
# --device cuda` with and without captions, twice, which also runs the captioner's unscaled-input fold and shared
# decode projection (2026-12-05) on CUDA for the first time; all in $OUT/issue16.tgz.
# Usage: scripts/device-background.sh start scripts/device-issue16.sh
set -uo pipefail
mkdir -p "$OUT/run1" "$OUT/run2" "$OUT/run3"
OUT="$OUT/run1" bash scripts/device-kernels.sh chunk train
OUT="$OUT/run2" bash scripts/device-kernels.sh chunk
OUT="$OUT/run2" bash scripts/device-train-speed.sh .old-tree 300
OUT="$OUT/run3" bash scripts/device-run-captions.sh 20000 2
tar -czf "$OUT/issue16.tgz" -C "$OUT" run1 run2 run3  # one file back (a device call returns at most 8)
