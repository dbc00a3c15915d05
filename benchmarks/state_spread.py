"""How far apart a sequence's tasks are in state, against how spread each task is: the reason trc's shifted
teaching (`--shift`) moves a task's windows by that task's own std.

    python -P benchmarks/state_spread.py --data runs/mw-easy-50 runs/cw10-30      # seconds

For the first k tasks of each sequence (k = 1 … n): the mean over state dims of the std over every
task's last frames (mixed) and of the mean within-task std, and the median over dims of their ratio.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from launch.bench.imitation import load_tasks  # noqa: E402

BENCHMARKS = {"mw-easy": "mw-easy-imitation", "cw10": "cw10-imitation"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, nargs="+", required=True, help="demonstration stores (thalamus record --expert)")
    args = p.parse_args()
    for name, benchmark in BENCHMARKS.items():
        tasks = load_tasks(benchmark, args.data)
        last = [o.reshape(len(o), tasks.model.obs_horizon, -1)[:, -1] for o in tasks.obs]
        print(f"{name}: {', '.join(tasks.names)}")
        for k in range(1, len(last) + 1):
            mixed, within = np.concatenate(last[:k]).std(0), np.mean([x.std(0) for x in last[:k]], 0)
            ratio = np.median(mixed / np.maximum(within, 1e-6))
            print(f"  first {k:2d} tasks: mean std mixed {mixed.mean():.3f}, within a task {within.mean():.3f}; "
                  f"median dim's ratio {ratio:.2f}")


if __name__ == "__main__":
    main()
