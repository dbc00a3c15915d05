#!/usr/bin/env bash
# Put in .whl/ (repo root, git-ignored) the wheels that the H200 machine (Python 3.12, no network)
# lacks to train and score Meta-World captioners: metaworld 3.0.0 and mujoco 3.8.1 with their needs,
# gymnasium, and the CLI's own needs (simple-parsing; zarr for the run store agent.checkpoints imports).
# Meta-World's wheel carries 25 MB of textures no scene file names; they are dropped (and from its
# RECORD) so that the tree fits the 64 MiB a device call can carry.
# Usage, from the repo root:  scripts/metaworld-wheels.sh   then carry ".whl" and begin the command with
#   python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .whl
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 -d .whl \
  metaworld==3.0.0 mujoco==3.8.1 glfw==2.11.0 PyOpenGL==3.1.10 gymnasium==1.4.0 farama-notifications==0.0.6 \
  simple-parsing==0.1.9 docstring-parser==0.18.0 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 \
  google-crc32c==1.9.0 rich==15.0.0 pygments==2.21.0 markdown-it-py==4.3.0 mdurl==0.1.2 2>&1 | grep -v "is ignored" || true
python3 - .whl/metaworld-3.0.0-py3-none-any.whl <<'PY'
import os, re, sys, zipfile
src = sys.argv[1]; tmp = src + ".tmp"
with zipfile.ZipFile(src) as zi:
    names = zi.namelist()
    xml = "".join(zi.read(n).decode() for n in names if n.endswith(".xml"))
    unused = {n for n in names if n.endswith(".png") and os.path.basename(n) not in xml}
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zo:
        for info in zi.infolist():
            if info.filename in unused:
                continue
            data = zi.read(info.filename)
            if info.filename.endswith("/RECORD"):
                data = "".join(line for line in data.decode().splitlines(True)
                               if line.split(",")[0] not in unused).encode()
            zo.writestr(info, data)
os.replace(tmp, src)
print(f"metaworld wheel: dropped {len(unused)} unused textures")
PY
du -sh .whl
