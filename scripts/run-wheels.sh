#!/usr/bin/env bash
# Put in .whl-run/ (repo root, git-ignored) the wheels that the H200 machine (Python 3.12, no network)
# lacks for `thalamus run` on Gymnasium's classic envs: ray 2.60.0 and its needs that the image lacks,
# gymnasium, zarr and the CLI's own needs. Ray's Java jars and the libraries the runtime never imports
# (rllib, serve, llm, data, train, tune, the dashboard's web client) are dropped so that the tree
# fits the 64 MiB a device call can carry. Usage, from the repo root: scripts/run-wheels.sh, then
# carry ".whl-run" and have the device script set WHEELS=.whl-run before sourcing device-setup.sh.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
grep -qx '/.whl-run/' .git/info/exclude 2>/dev/null || echo '/.whl-run/' >> .git/info/exclude
mkdir -p .whl-run
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl-run \
  ray==2.60.0 gymnasium==1.4.0 farama-notifications==0.0.6 zarr==3.4.2 numcodecs==0.17.1 donfig==0.8.1.post1 \
  google-crc32c==1.9.0 msgspec==0.23.0 jsonschema==4.26.0 jsonschema-specifications==2025.9.1 \
  referencing==0.37.0 rpds-py==2026.9.1 simple-parsing==0.1.9 docstring-parser==0.18.0 2>&1 | grep -v "is ignored" || true
python3 - .whl-run/ray-2.60.0-*.whl <<'PY'
import os, sys, zipfile
src = sys.argv[1]; tmp = src + ".tmp"
drop = ("ray/jars/", "ray/rllib/", "ray/serve/", "ray/llm/", "ray/data/", "ray/train/", "ray/tune/",
        "ray/dashboard/client/")
with zipfile.ZipFile(src) as zi, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as zo:
    for info in zi.infolist():
        if not info.filename.startswith(drop):
            zo.writestr(info, zi.read(info.filename))
os.replace(tmp, src)
PY
du -sh .whl-run
