#!/usr/bin/env bash
# Put Triton 3.8 in two carriable parts, .triton38-aa and .triton38-ab (repo root, git-ignored, ~50 MB
# each: a device call carries at most 64 MiB), for scripts/device-triton38.sh on the H200 machine, whose
# Triton 3.6 builds the 16-bit backward wrong on Hopper (BENCHMARKS.md, issue 16) and on which fla refuses
# its backward below 3.7.1. The wheel (248 MB) is cut to what compiles and launches on an NVIDIA GPU (no
# Blackwell ptxas, CUPTI, proton, AMD backend binaries) and xz-compressed (~99 MB).
# Usage, from the repo root: scripts/triton38-parts.sh; then carry ".triton38-aa" in one device call and
# ".triton38-ab" (with ".whl-fla") in the next, at once (a held machine keeps the first).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
for p in /.triton38-aa /.triton38-ab; do grep -qx "$p" .git/info/exclude 2>/dev/null || echo "$p" >> .git/info/exclude; done
tmp=$(mktemp -d)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_27_x86_64 --platform manylinux_2_28_x86_64 -d "$tmp" "triton==3.8.0" 2>&1 | grep -v "is ignored" || true
python3 - "$tmp" <<'PY'
import glob, sys, zipfile
wheel = zipfile.ZipFile(glob.glob(f"{sys.argv[1]}/triton-*.whl")[0])
skip = ("blackwell", "cupti", "libproton", "instrumentation", "nvdisasm", "backends/amd/lib")
wheel.extractall(f"{sys.argv[1]}/site", [i for i in wheel.infolist() if not any(s in i.filename for s in skip)])
PY
tar -cf - -C "$tmp/site" . | xz -T0 -6 | split -b 52m - .triton38-
rm -rf "$tmp"
ls -la .triton38-*
