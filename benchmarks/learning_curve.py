"""Learning curve of a recorded run, read back from its store: return vs env steps.

    python benchmarks/learning_curve.py runs/cartpole --png curve.png

Prints the mean return of the last 20 finished episodes at every tenth of the run and, with
``--png``, plots every episode's return and that running mean against the step it ended at.
Episodes are stored in the order they finished, so ``episode_ends`` is the step axis (a step
count over all envs).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first
from memory import open_store  # noqa: E402


def curve(run_dir: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(end step, return, running mean of 20) per finished episode (cut-short ones left out)."""
    store = open_store(run_dir)
    finished = store.episode_complete  # those a stop or a task boundary cut short are left out
    ends, returns = store.episode_ends[finished], store.episode_returns()[finished]
    running = np.array([returns[max(0, i - 19): i + 1].mean() for i in range(len(returns))])
    return ends, returns, running


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path)
    p.add_argument("--png", type=Path, help="write the plot here")
    args = p.parse_args()
    ends, returns, running = curve(args.run_dir)
    if not len(ends):
        sys.exit(f"{args.run_dir}: no finished episode to plot (a stop or a task boundary cut every stored one short)")
    total = ends[-1]
    print("steps      mean return (last 20 episodes)")
    for frac in np.linspace(0.1, 1.0, 10):
        i = np.searchsorted(ends, frac * total, side="right") - 1
        print(f"{int(frac * total):>8,}   {running[i]:.1f}" if i >= 0 else f"{int(frac * total):>8,}   n/a")
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 3.5), dpi=120)
        ax.scatter(ends, returns, s=4, alpha=0.35, label="episode return")
        ax.plot(ends, running, color="C1", label="mean of last 20")
        ax.set_xlabel("env steps")
        ax.set_ylabel("return")
        ax.set_title(str(args.run_dir.name))
        ax.legend(loc="lower right")
        fig.tight_layout()
        fig.savefig(args.png)
        print(f"wrote {args.png}")


if __name__ == "__main__":
    main()
