#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" and ".old-tree", b8ef58b's code made by
# `git archive b8ef58b agent kernels launch envs memory viewer pyproject.toml | tar -x -C .old-tree`), for
# scripts/device-background.sh (about 12 minutes: start, then wait twice), each part packed as it ends
# (a device call returns at most 8 files, and a part cut off by the machine going back loses only itself):
# 1. camera.tgz: the CartPole captioner fine-tuned STEPS more camera steps on mixed streams (seed SEED);
# 2. phases.tgz: benchmarks/train_phases.py, b8ef58b's code and this tree alternating, twice (issue 16's
#    training speed, with start-up, steady steps and the final evaluation apart);
# 3. serve.tgz: `thalamus bench caption --streams 20000 --age 18000 --bf16 --compile`, twice (issue 15).
# Usage: scripts/device-background.sh start scripts/device-issue15.sh [STEPS] [SEED]   (defaults 4000, 5)
set -uo pipefail
steps=${1:-4000} seed=${2:-5}
root=$OUT
mkdir -p "$root/camera" "$root/phases" "$root/serve"
WHEELS=.whl-run OUT="$root/camera" bash scripts/device-camera-captioners.sh "$steps" cartpole 14 "$seed"
tar -czf "$root/camera.tgz" -C "$root" camera
WHEELS=.whl-run source scripts/device-setup.sh  # (installed by the first part; sets PYTHONPATH here)
for run in 1 2; do
  for tree in .old-tree .; do
    name=$([ "$tree" = . ] && echo new || echo old)
    python3 benchmarks/train_phases.py --tree "$tree" --steps 300 --workers 14 \
      --json "$root/phases/$name-run$run.json" 2> "$root/phases/$name-run$run.err" | tail -n 1
  done
done
tar -czf "$root/phases.tgz" -C "$root" phases
OUT="$root/serve" bash scripts/device-caption-serve.sh 20000 18000 2
tar -czf "$root/serve.tgz" -C "$root" serve
