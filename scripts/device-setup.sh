# Sourced by the scripts/device-*.sh scripts on the H200 machine: unpack the GL libraries (.gl, apt
# debs) and install the carried wheels into /tmp/site: $WHEELS, by default .whl
# (scripts/metaworld-wheels.sh); .whl-run for `thalamus run` (scripts/run-wheels.sh). Once a machine:
# scripts started side by side find the first one's install and do not write over it.
installed=/tmp/site/.installed-$(basename "${WHEELS:-.whl}")
if [ ! -f "$installed" ]; then
  for f in .gl/*.deb; do dpkg -x "$f" /; done
  ldconfig
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site "${WHEELS:-.whl}"/*.whl || exit 1
  touch "$installed"
fi
export PYTHONPATH=/tmp/site MUJOCO_GL=egl PYTHONUNBUFFERED=1
