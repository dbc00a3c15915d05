#!/usr/bin/env bash
# On the H200 machine (the device tool; carry ".whl-run" and ".old-tree", b8ef58b's code made by
# `git archive b8ef58b agent kernels launch envs memory viewer pyproject.toml | tar -x -C .old-tree`): the
# captioner's training step replayed as one CUDA graph (TrainConfig.graph, agent/perception/train_steps.py),
# first checked, then timed. benchmarks/train_step_check.py prints the CPU's, the GPU's and the graph's losses
# over 20 steps from the same weights (they must agree); benchmarks/train_phases.py then runs b8ef58b's code,
# this tree eager and this tree with the graph, alternating, twice (300 steps, 14 workers). All in
# $OUT/train-graph.tgz (a device call returns at most 8 files).
# Usage: scripts/device-train-graph.sh [STEPS]      (default 300; about 4 minutes)
set -uo pipefail
steps=${1:-300}
WHEELS=.whl-run source scripts/device-setup.sh
root=$OUT OUT=$OUT/train-graph
mkdir -p "$OUT"
python3 benchmarks/train_step_check.py --data synthetic --init agent/perception/checkpoints/captioner.pt \
  > "$OUT/train-step-check.txt" 2>&1; tail -n 25 "$OUT/train-step-check.txt"
for run in 1 2; do
  for variant in old eager graph; do
    tree=.; flags=()
    [ $variant = old ] && tree=.old-tree
    [ $variant = graph ] && flags=(--graph)
    python3 benchmarks/train_phases.py --tree "$tree" --steps "$steps" --workers 14 "${flags[@]}" \
      --json "$OUT/phases-$variant-run$run.json" 2> "$OUT/phases-$variant-run$run.err" | tail -n 1 \
      || tail -n 3 "$OUT/phases-$variant-run$run.err"
  done
done
tar -czf "$root/train-graph.tgz" -C "$root" train-graph
