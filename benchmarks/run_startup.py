"""Where a short `thalamus run`'s wall time goes: the driver's imports, each actor start-up wait, the stepping.

    python benchmarks/run_startup.py                 # 2 runs of 200 CartPole steps on a fresh local cluster
    python benchmarks/run_startup.py --runs 3 --steps 200 --num-envs 2

Starts a local Ray cluster (as the tests do), then runs ``thalamus run`` in-process as its driver, each
time in a fresh Python process, and prints a timeline: seconds since that process started at each
import, each actor spawned, each driver wait on an actor longer than 0.2 s, and the run's start and end.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

DRIVER = r"""
import sys, time
T0 = time.perf_counter()
def log(*a): print(f"{time.perf_counter() - T0:6.2f}", *a, file=sys.stderr, flush=True)  # --json owns stdout
root, steps, envs, run_dir, address = sys.argv[1:]
sys.path.insert(0, root)
from envs.headless import configure; configure()
import ray; log("ray imported")
import agent.runtime as rt; log("agent.runtime imported (torch with it)")
spawn, get, run = rt.Agent._spawn, rt.get, rt.Agent.run
def timed_spawn(self, cls, *a, **k):
    log("spawn", cls.__name__); return spawn(self, cls, *a, **k)
def timed_get(ref, name, *a, **k):
    t = time.perf_counter(); out = get(ref, name, *a, **k); waited = time.perf_counter() - t
    if waited > 0.2: log(f"waited {waited:.2f} s on {name}")
    return out
def timed_run(self, *a, **k):
    log("stepping starts"); out = run(self, *a, **k); log("run ends (summary made)"); return out
rt.Agent._spawn, rt.get, rt.Agent.run = timed_spawn, timed_get, timed_run
from launch.cli import main
code = main(["run", "--steps", steps, "--num-envs", envs, "--captioner", "off", "--run-dir", run_dir,
             "--address", address, "--json"])
log("main returned", code)
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=2)
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--num-envs", type=int, default=2)
    args = p.parse_args()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    import ray

    temp = tempfile.mkdtemp(prefix="thr-", dir="/tmp")
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 2**20, _temp_dir=temp,
             logging_level=logging.WARNING, log_to_driver=False)
    address = ray.get_runtime_context().gcs_address
    for i in range(args.runs):
        print(f"-- run {i + 1}", flush=True)
        argv = [str(ROOT), str(args.steps), str(args.num_envs), tempfile.mkdtemp(prefix="startup-") + "/run", address]
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-c", DRIVER, *argv], capture_output=True, text=True)
        lines = [ln for ln in proc.stderr.splitlines() if ln[:6].strip().replace(".", "").isdigit()]
        print("\n".join(lines))
        print(f"{time.perf_counter() - start:6.2f} process exited ({proc.returncode})", flush=True)
    ray.shutdown()


if __name__ == "__main__":
    main()
