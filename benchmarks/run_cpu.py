"""What a `thalamus run` costs the machine in CPU seconds, and which process spent them.

    python benchmarks/run_cpu.py                                   # 3 runs of 200 CartPole steps, 4 envs
    python benchmarks/run_cpu.py --steps 2000 --runs 2 --per-process
    python -P benchmarks/run_cpu.py --steps 60000 --num-envs 8 --runs 1 --captioner auto --window 0.4 0.8

On a 2-core machine the test suite is CPU-bound (both cores busy throughout), so what a run costs in
CPU, not its wall time, decides how long `make test` takes. This starts a local Ray cluster (as the
tests do), then runs ``thalamus run --address`` in a new process each time and reports the busy CPU
seconds of the whole machine from /proc/stat while it ran (run it on an idle machine), and with
``--per-process`` the CPU of each process (driver, each actor), sampled every 0.1 s. With ``--window
A B`` it also says how many cores each process kept busy between fractions A and B of the run's wall
time (the run at full speed, start-up and shutdown left out) beside the run's steps/s: where the cores
of a run with and without captions go.
"""

from __future__ import annotations

import argparse
import json
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


Snapshot = dict[int, tuple[str, float]]


def _short(name: str) -> str:
    return name.split("/")[-1] if not name.startswith("ray::") else name.split(".")[0]


def _costs(start: Snapshot, end: Snapshot) -> dict[str, float]:
    """CPU seconds by process name between two snapshots (a process absent at ``start`` counts from 0)."""
    costs: dict[str, float] = {}
    for pid, (name, cpu) in end.items():
        costs[_short(name)] = costs.get(_short(name), 0.0) + cpu - start.get(pid, ("", 0.0))[1]
    return costs


def per_process(cmd: list[str]) -> tuple[subprocess.CompletedProcess, dict[str, float], list[tuple[float, Snapshot]]]:
    """Run ``cmd``; CPU seconds of every process that ran meanwhile, by name (Ray names its actors),
    and the timed snapshots they came from (seconds since the start, pid → (name, CPU s so far))."""
    import psutil

    def snap() -> dict[int, tuple[str, float]]:
        out = {}
        for p in psutil.process_iter(["pid", "cmdline", "cpu_times"]):
            t, line = p.info["cpu_times"], " ".join(p.info["cmdline"] or [])
            if t is not None:
                out[p.info["pid"]] = (line.split()[0] if line.startswith("ray::") else line[:60], t.user + t.system)
        return out

    before, seen, done = snap(), {}, threading.Event()
    start, series = time.perf_counter(), []

    def sample() -> None:
        while not done.is_set():
            for pid, (name, cpu) in snap().items():
                seen[pid] = (name or seen.get(pid, ("", 0.0))[0], cpu)
            series.append((time.perf_counter() - start, dict(seen)))
            time.sleep(0.1)

    thread = threading.Thread(target=sample)
    thread.start()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    time.sleep(2)
    done.set()
    thread.join()
    return proc, _costs(before, seen), series


def window_cores(series: list[tuple[float, Snapshot]], wall: float, a: float, b: float) -> tuple[float, dict[str, float]]:
    """The window's length in seconds and each process's busy cores over it (fractions a..b of ``wall``)."""
    first = min(series, key=lambda s: abs(s[0] - a * wall))
    last = min(series, key=lambda s: abs(s[0] - b * wall))
    dt = last[0] - first[0]
    return dt, {k: v / dt for k, v in _costs(first[1], last[1]).items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs in a row (default: 3)")
    parser.add_argument("--steps", type=int, default=200, help="env steps a run (default: 200)")
    parser.add_argument("--num-envs", type=int, default=4, help="envs (default: 4)")
    parser.add_argument("--captioner", default="off", help="--captioner of the runs (default: off)")
    parser.add_argument("--per-process", action="store_true", help="also each process's CPU (default: off)")
    parser.add_argument("--env", default="CartPole-v1", help="--env of the runs (default: CartPole-v1)")
    parser.add_argument("--window", type=float, nargs=2, metavar=("A", "B"),
                        help="also each process's busy cores between these fractions of the run's wall time "
                             "(implies --per-process; default: off)")
    args = parser.parse_args()

    import ray

    os.environ["RAY_AUTH_MODE"] = "disabled"
    ray.init(num_cpus=4, include_dashboard=False, object_store_memory=256 * 2**20, log_to_driver=False,
             _temp_dir=tempfile.mkdtemp(prefix="thr-", dir="/tmp"), logging_level=logging.WARNING)
    address = ray.get_runtime_context().gcs_address
    time.sleep(5)  # the cluster's own start-up done
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            cmd = [sys.executable, "-m", "launch.cli", "run", "--env", args.env, "--steps", str(args.steps), "--num-envs",
                   str(args.num_envs), "--captioner", args.captioner, "--run-dir", f"{tmp}/run{i}",
                   "--address", address, "--json"]
            cpu, wall = busy_cpu_s(), time.perf_counter()
            series: list[tuple[float, Snapshot]] = []
            if args.per_process or args.window:
                proc, costs, series = per_process(cmd)
            else:
                proc, costs = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT), {}
            cpu, wall = busy_cpu_s() - cpu, time.perf_counter() - wall
            if proc.returncode != 0:
                sys.exit(f"run {i} failed: {proc.stderr.strip().splitlines()[-1:]}")
            summary = json.loads(proc.stdout.splitlines()[0])
            print(f"run {i}: {cpu:.1f} CPU s (machine), {wall:.1f} s wall, {summary.get('steps_per_s', 0):.0f} steps/s")
            for name, c in sorted(costs.items(), key=lambda kv: -kv[1]):
                if c >= 0.1:
                    print(f"    {c:5.2f}  {name}")
            if args.window:
                dt, cores = window_cores(series, wall, *args.window)
                print(f"  busy cores from {args.window[0]:.0%} to {args.window[1]:.0%} of the run ({dt:.1f} s): "
                      f"{sum(cores.values()):.2f} in all")
                for name, c in sorted(cores.items(), key=lambda kv: -kv[1]):
                    if c >= 0.01:
                        print(f"    {c:5.2f}  {name}")
            time.sleep(3)


if __name__ == "__main__":
    main()
