"""What a `thalamus run` costs the machine in CPU seconds, and which process spent them.

    python benchmarks/run_cpu.py                                   # 3 runs of 200 CartPole steps, 4 envs
    python benchmarks/run_cpu.py --steps 2000 --runs 2 --per-process

On a 2-core machine the test suite is CPU-bound (both cores busy throughout), so what a run costs in
CPU, not its wall time, decides how long `make test` takes. This starts a local Ray cluster (as the
tests do), then runs ``thalamus run --address`` in a new process each time and reports the busy CPU
seconds of the whole machine from /proc/stat while it ran (run it on an idle machine), and with
``--per-process`` the CPU of each process (driver, each actor), sampled every 0.1 s.
"""

from __future__ import annotations

import argparse
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def busy_cpu_s() -> float:
    """Seconds of CPU the machine has spent not idle since boot (all cores)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def per_process(cmd: list[str]) -> tuple[subprocess.CompletedProcess, dict[str, float]]:
    """Run ``cmd``; CPU seconds of every process that ran meanwhile, by name (Ray names its actors)."""
    import psutil

    def snap() -> dict[int, tuple[str, float]]:
        out = {}
        for p in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
            t, line = p.info["cpu_times"], " ".join(p.info["cmdline"] or [])
            if t is not None:
                out[p.info["pid"]] = (line.split()[0] if line.startswith("ray::") else line[:60], t.user + t.system)
        return out

    before, seen, done = snap(), {}, threading.Event()

    def sample() -> None:
        while not done.is_set():
            for pid, (name, cpu) in snap().items():
                seen[pid] = (name or seen.get(pid, ("", 0.0))[0], cpu)
            time.sleep(0.1)

    thread = threading.Thread(target=sample)
    thread.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    time.sleep(2)
    done.set()
    thread.join()
    costs: dict[str, float] = {}
    for pid, (name, cpu) in seen.items():
        name = name.split("/")[-1] if not name.startswith("ray::") else name.split(".")[0]
        costs[name] = costs.get(name, 0.0) + cpu - before.get(pid, ("", 0.0))[1]
    return proc, costs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs in a row (default: 3)")
    parser.add_argument("--steps", type=int, default=200, help="env steps a run (default: 200)")
    parser.add_argument("--num-envs", type=int, default=4, help="envs (default: 4)")
    parser.add_argument("--captioner", default="off", help="--captioner of the runs (default: off)")
    parser.add_argument("--per-process", action="store_true", help="also each process's CPU (default: off)")
    args = parser.parse_args()

    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="thr-", dir="/tmp"), logging_level=logging.WARNING)
    address = ray.get_runtime_context().gcs_address
    time.sleep(5)  # the cluster's own start-up done
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            cmd = [sys.executable, "-m", "launch.cli", "run", "--steps", str(args.steps), "--num-envs",
                   str(args.num_envs), "--captioner", args.captioner, "--run-dir", f"{tmp}/run{i}",
                   "--address", address, "--json"]
            cpu, wall = busy_cpu_s(), time.perf_counter()
            if args.per_process:
                proc, costs = per_process(cmd)
            else:
                proc, costs = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT), {}
            cpu, wall = busy_cpu_s() - cpu, time.perf_counter() - wall
            if proc.returncode != 0:
                sys.exit(f"run {i} failed: {proc.stderr.strip().splitlines()[-1:]}")
            print(f"run {i}: {cpu:.1f} CPU s (machine), {wall:.1f} s wall")
            for name, c in sorted(costs.items(), key=lambda kv: -kv[1]):
                if c >= 0.1:
                    print(f"    {c:5.2f}  {name}")
            time.sleep(3)


if __name__ == "__main__":
    main()
