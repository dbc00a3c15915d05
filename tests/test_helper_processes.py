"""Helper processes end with the command that started them, however it is stopped: a benchmark's pool
(and its manager) in the middle of their runs, and the captioner trainer's stream workers."""

import os
import signal
import subprocess
import sys
import time

import pytest

POOL = """
import os, sys, time
from pathlib import Path
from launch.bench.workers import worker_manager, worker_pool

def busy(i):
    Path(sys.argv[1], str(os.getpid())).touch()
    time.sleep(600)  # a run in the middle of its training

if __name__ == "__main__":
    with worker_manager() as manager, worker_pool(2) as pool:
        Path(sys.argv[1], str(manager._process.pid)).touch()
        pool.map(busy, range(2), chunksize=1)
"""

STREAMS = """
import sys, time
from pathlib import Path
from agent.perception.data import ParallelStreams

streams = ParallelStreams("synthetic", list(range(3)), 64, 4, workers=3, prefetch=1)
streams.next(4)  # the workers wait on their semaphores for the trainer to let the slot go
for p in streams.procs:
    Path(sys.argv[1], str(p.pid)).touch()
time.sleep(600)
"""


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"  # a zombie has ended
    except FileNotFoundError:
        return False


@pytest.mark.skipif(sys.platform != "linux", reason="the parent-death signal is Linux's")
@pytest.mark.parametrize("code", [POOL, STREAMS], ids=["benchmark-pool", "caption-streams"])
def test_helpers_end_when_their_command_is_killed(tmp_path, code):
    script, pids_dir = tmp_path / "command.py", tmp_path / "pids"
    script.write_text(code)
    pids_dir.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(pids_dir)], cwd=os.getcwd(),
                              env={**os.environ, "PYTHONPATH": os.getcwd()})
    deadline = time.monotonic() + 120
    while len(list(pids_dir.iterdir())) < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
    pids = [int(p.name) for p in pids_dir.iterdir()]
    assert len(pids) == 3 and all(_alive(p) for p in pids)
    parent.send_signal(signal.SIGKILL)  # no `with` or `finally` unwinds: only the kernel can tell them
    parent.wait()
    deadline = time.monotonic() + 20
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in pids if _alive(p)]
    for p in left:  # do not leave them running when this fails
        os.kill(p, signal.SIGKILL)
    assert not left
