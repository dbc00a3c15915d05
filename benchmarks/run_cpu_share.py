"""Where the cores go in `thalamus run`: each process's CPU time (user + system, from /proc) over a window
in the middle of a run, in cores, the Ray actors by name. Linux only.

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


def cpu_times() -> dict[int, tuple[float, str]]:
    """Every process's CPU seconds so far and its command line (the first 60 characters)."""
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:  # ended meanwhile
            continue
        fields = stat.rsplit(")", 1)[1].split()
        out[int(pid)] = ((int(fields[11]) + int(fields[12])) / TICKS, cmd.strip()[:60])
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
    shares = sorted(((after[pid][0] - before[pid][0]) / elapsed, after[pid][1]) for pid in after if pid in before)
    shares = [(round(s, 3), name) for s, name in shares[::-1] if s >= 0.01]
    for share, name in shares:
        print(f"{share:5.2f} cores  {name}")
    print(f"{sum(s for s, _ in shares):5.2f} cores in all; the run: {summary['steps_per_s']:.0f} steps/s")
    if args.json:
        args.json.write_text(json.dumps({"command": cmd[3:], "shares": shares, "steps_per_s": summary["steps_per_s"]}))


if __name__ == "__main__":
    main()
