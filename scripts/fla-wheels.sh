#!/usr/bin/env bash
# Put in .whl-fla/ (repo root, git-ignored) flash-linear-attention (fla-core 0.6.0, pure Python) and
# einops for the H200 machine, so benchmarks/kernels.py times ours beside fla there (fla's backward
# refuses the machine's triton 3.6 on Hopper; its forward runs). Usage, from the repo root:
# scripts/fla-wheels.sh, then carry ".whl-fla" with scripts/device-kernels.sh.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.whl-fla/' .git/info/exclude 2>/dev/null || echo '/.whl-fla/' >> .git/info/exclude
mkdir -p .whl-fla
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform any -d .whl-fla fla-core==0.6.0 einops==0.8.2 2>&1 | grep -v "is ignored" || true
ls .whl-fla
