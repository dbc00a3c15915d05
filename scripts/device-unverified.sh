#!/usr/bin/env bash
# On the H200 machine, for scripts/device-background.sh: everything built without a GPU on 2026-12-05 (the
# fourteenth sitting), checked and timed in one job (about 20 minutes: start, then wait three times), most
# likely to settle a bar first, each part packed as it ends (a part cut off by the machine going back loses
# only itself):
# 1. train-graph.tgz: the captioner's training step as one CUDA graph (scripts/device-train-graph.sh);
# 2. serve.tgz: `thalamus bench caption --streams 1024 --age 18000 --bf16 --compile`, whose sparse-softmax
#    captioner's bf16 path crashed on the GPU before its two fixes;
# 3. triton38.tgz: the backward sweep (local_dv, the 16-bit build) and the chunk benchmarks under Triton 3.8
#    (scripts/device-triton38.sh).
# Carry, in three calls back to back (64 MiB a call; a held machine keeps what earlier calls carried):
#   [".triton38-aa", ".old-tree", ".whl-fla"], then [".triton38-ab"], then [".whl-run"] with
#   `scripts/device-background.sh start scripts/device-unverified.sh`.
set -uo pipefail
root=$OUT
OUT=$root bash scripts/device-train-graph.sh
mkdir -p "$root/serve"
OUT=$root/serve bash scripts/device-caption-serve.sh 1024 18000 1 --bf16 --compile > "$root/serve/log.txt" 2>&1
tail -n 12 "$root/serve/log.txt"
tar -czf "$root/serve.tgz" -C "$root" serve
OUT=$root bash scripts/device-triton38.sh
