# Two commands do all set-up on a fresh machine: `make run` and `make test`.
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Headless rendering needs no variables here: every entry point sets its own (envs/headless.py).

.PHONY: run test bench clean

# torch goes in first and pinned: the CPU build; a bare `torch` in a fresh venv pulls a CUDA build.
# pip byte-compiles one file at a time; compileall after it uses every core (125 s → 80 s on 2 cores).
$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --no-compile --disable-pip-version-check torch==2.13.0 2>&1 | grep -v "is ignored" || true
	$(PY) -m pip install -q --no-compile --disable-pip-version-check torch==2.13.0 triton==3.8.0 -e ".[dev]" 2>&1 | grep -v "is ignored" || true
	$(PY) -m compileall -q -j 0 $(VENV)/lib > /dev/null || true
	$(PY) -c "import torch, triton, ray, gymnasium, zarr, launch.cli"
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/thalamus run

# Our packages byte-compiled first: where PYTHONDONTWRITEBYTECODE is set no process writes its .pyc,
# and every Ray worker of every test run would compile them again (~0.8 s a process).
# Two pytest workers, a file each at a time: a test waits on Ray actors and subprocesses as much as
# it computes, so two overlap on two cores; each worker is a test session with its one Ray cluster.
# The tests that hold a wall-clock rate (a robot at 30 Hz within 10%) run after them, alone.
test: $(STAMP)
	$(PY) -m compileall -q -j 0 agent envs kernels launch memory > /dev/null
	TRITON_INTERPRET=1 $(VENV)/bin/pytest -n 2 --dist loadfile -m "not realtime"
	TRITON_INTERPRET=1 $(VENV)/bin/pytest -m realtime

bench: $(STAMP)
	$(PY) benchmarks/pipeline.py

clean:
	rm -rf $(VENV) runs
