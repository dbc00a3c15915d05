# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Headless rendering needs no variables here: every entry point sets its own (envs/headless.py).
# Python writes each module's bytecode the first time it is imported, even where the environment says
# not to: every Ray worker of every run would otherwise compile torch and our packages again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: run test bench clean

# torch goes in first and pinned: the CPU build; a bare `torch` in a fresh venv pulls a CUDA build.
# No compiling the whole 2.5 GB (40 s on 2 cores): the import check compiles what we use (~15 s).
# The venv gets no pip of its own (ensurepip takes 8 s): the machine's pip installs into it (--python).
PIP    := python3 -m pip --python $(PY) install -q --no-compile --disable-pip-version-check
# Headless Chromium (Debian's `chromium`) renders the web viewer in its test: installed where missing,
# alongside pip (it is mostly download and unpacking); where it cannot be, that one test is skipped.
CHROMIUM := command -v chromium >/dev/null || apt-get install -y -q chromium >/dev/null 2>&1 \
	|| echo "no chromium (apt-get install chromium failed): the web viewer test will be skipped"
$(STAMP): pyproject.toml
	python3 -m venv --without-pip $(VENV)
	{ $(CHROMIUM); } & \
	{ $(PIP) torch==2.13.0 2>&1 | grep -v "is ignored" || true; } && \
	{ $(PIP) torch==2.13.0 triton==3.8.0 -e ".[dev]" 2>&1 | grep -v "is ignored" || true; } ; \
	wait
	$(PY) -c "import torch, triton, ray, gymnasium, zarr, mujoco, metaworld, launch.cli, agent.runtime"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/thalamus run

# Two pytest workers, a file each at a time: a test waits on Ray actors and subprocesses as much as
# it computes, so two overlap on two cores; both join the one Ray cluster pytest's controller starts.
# The tests that hold a wall-clock rate (a robot at 30 Hz within 10%) run after them, alone.
test: $(STAMP)
	TRITON_INTERPRET=1 $(VENV)/bin/pytest -n 2 --dist loadfile -m "not realtime"
	TRITON_INTERPRET=1 $(VENV)/bin/pytest -m realtime

bench: $(STAMP)
	$(PY) benchmarks/pipeline.py

clean:
	rm -rf $(VENV) runs
