"""Where the cores go in `thalamus run`: each process's CPU time (user + system, from /proc) over a window
in the middle of a run, in cores, the Ray actors by name, with its system share and minor page faults a
second. Linux only.

    python -P benchmarks/run_cpu_share.py                      # CartPole-v1 with its shipped captioner
    python -P benchmarks/run_cpu_share.py -- --captioner off   # anything after -- goes to thalamus run
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_times() -> dict[int, tuple[float, float, int, str]]:
    """Every process's user and system CPU seconds so far, its minor page faults, and its command line
    (the first 60 characters)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(pid)] = (int(fields[11]) / TICKS, int(fields[12]) / TICKS, int(fields[7]), cmd.strip()[:60])
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=60000, help="thalamus run --steps (default: %(default)s)")
    p.add_argument("--after", type=float, default=12.0, help="seconds into the run the window starts (default: %(default)s)")
    p.add_argument("--window", type=float, default=8.0, help="seconds measured (default: %(default)s)")
    p.add_argument("--json", type=Path, help="write the shares here")
    p.add_argument("run_args", nargs="*", help="more thalamus run arguments (after --)")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "launch.cli", "run", "--steps", str(args.steps), "--run-dir", f"{tmp}/run",
               "--json", *args.run_args]
        run = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        time.sleep(args.after)
        before, start = cpu_times(), time.perf_counter()
        time.sleep(args.window)
        after, elapsed = cpu_times(), time.perf_counter() - start
        summary = json.loads(run.communicate()[0].splitlines()[0])
    rows = []
    for pid in set(after) & set(before):
        (user0, sys0, faults0, _), (user1, sys1, faults1, name) = before[pid], after[pid]
        cores, system = (user1 + sys1 - user0 - sys0) / elapsed, (sys1 - sys0) / elapsed
        if cores >= 0.01:
            rows.append({"cores": round(cores, 3), "system": round(system, 3),
                         "faults_per_s": round((faults1 - faults0) / elapsed), "process": name})
    rows.sort(key=lambda r: -r["cores"])
    for r in rows:
        print(f"{r['cores']:5.2f} cores (system {r['system']:.2f}) {r['faults_per_s']:8d} faults/s  {r['process']}")
    print(f"{sum(r['cores'] for r in rows):5.2f} cores in all; the run: {summary['steps_per_s']:.0f} steps/s")
    if args.json:
        args.json.write_text(json.dumps({"command": cmd[3:], "shares": rows, "steps_per_s": summary["steps_per_s"]}))


if __name__ == "__main__":
    main()
