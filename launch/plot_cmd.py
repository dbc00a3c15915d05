"""`thalamus plot RUN_DIR`: a run's learning curve read back from its store — return (and success,
where the env reports it) against env steps, with a moving mean, one curve per task for a sequence.

    thalamus plot runs/cartpole
    thalamus plot runs/mw-easy --png curve.png --window 50
    thalamus plot runs/cartpole --json

Episodes are stored in the order they finished, so each one's end row is its step (a count over all
envs). Episodes a stop or a task boundary cut short are left out. The table gives the moving means at
every tenth of the run; `--png` draws every episode's return and the moving means.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from launch.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plot", help="a run's return and success against steps (table, PNG or JSON)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (or its store.zarr)")
    p.add_argument("--png", type=Path, metavar="PATH", help="also draw the curves into this PNG (default: none)")
    p.add_argument("--window", type=int, default=20, metavar="N",
                   help="episodes in the moving mean, per task (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the curves as one JSON object (default: a table)")
    p.set_defaults(func=main)


@dataclass(frozen=True)
class Curves:
    """Per finished episode, in the order they ended: its end step, return, success (None when the
    store has none), task, and the moving means over the last ``window`` episodes of its task."""

    step: np.ndarray
    ret: np.ndarray
    success: np.ndarray | None
    task: np.ndarray
    mean_return: np.ndarray
    mean_success: np.ndarray | None
    task_names: list[str]


def _moving(values: np.ndarray, groups: np.ndarray, window: int) -> np.ndarray:
    """The mean of the last ``window`` values of the same group, at each position."""
    out = np.empty(len(values))
    for g in np.unique(groups):
        idx = np.flatnonzero(groups == g)
        sums = np.cumsum(np.concatenate(([0.0], values[idx])))
        lo = np.maximum(0, np.arange(1, len(idx) + 1) - window)
        out[idx] = (sums[1:] - sums[lo]) / (np.arange(1, len(idx) + 1) - lo)
    return out


def read_curves(run_dir: Path, window: int) -> Curves:
    """The run's curves; UsageError (one line) when there is no store or no finished episode."""
    from memory import StoreError, open_store, read_manifest

    try:
        store = open_store(run_dir)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    done = store.episode_complete
    if not done.any():
        raise UsageError(f"{run_dir}: no finished episode to plot yet (a stop or a task boundary cut every stored "
                         "one short, or none was stored): let the run go longer")
    step, ret, task = store.episode_ends[done], store.episode_returns()[done], store.episode_tasks[done]
    success = (store.episode_returns("success")[done] > 0).astype(float) if "success" in store.keys else None
    manifest = read_manifest(store.path.parent)
    names = manifest.get("task_names") or [manifest.get("config", {}).get("env_id") or "task 0"]
    names = [str(n) for n in names] if isinstance(names, list) else []
    return Curves(step, ret, success, task, _moving(ret, task, window),
                  None if success is None else _moving(success, task, window), names)


def main(args: argparse.Namespace) -> int:
    if args.window < 1:
        raise UsageError(f"--window must be at least 1, got {args.window}")
    c = read_curves(args.run_dir, args.window)
    tasks = np.unique(c.task).tolist()
    label = {t: c.task_names[t] if t < len(c.task_names) else f"task {t}" for t in tasks}
    total = int(c.step[-1])
    rows = []
    for frac in np.linspace(0.1, 1.0, 10):
        i = int(np.searchsorted(c.step, frac * total, side="right")) - 1
        rows.append({"step": int(frac * total), "task": label[int(c.task[i])] if i >= 0 else None,
                     "mean_return": float(c.mean_return[i]) if i >= 0 else None,
                     "mean_success": float(c.mean_success[i]) if i >= 0 and c.mean_success is not None else None})
    if args.png:
        _draw(c, label, args.window, args.png, args.run_dir.name)
    if args.json:
        print(json.dumps({"run_dir": str(args.run_dir), "episodes": len(c.step), "window": args.window,
                          "tenths": rows, "png": str(args.png) if args.png else None,
                          "episodes_by_task": {label[t]: int((c.task == t).sum()) for t in tasks}}))
        return 0
    print(f"{len(c.step)} finished episodes; moving means over the last {args.window} of the same task")
    print(f"{'steps':>10}  {'task':<28} {'mean return':>12} {'success':>8}")
    for r in rows:
        mean = "n/a" if r["mean_return"] is None else f"{r['mean_return']:.1f}"
        ok = "" if r["mean_success"] is None else f"{r['mean_success']:.0%}"
        print(f"{r['step']:>10,}  {r['task'] or '':<28} {mean:>12} {ok:>8}")
    if args.png:
        print(f"wrote {args.png}")
    return 0


def _draw(c: Curves, label: dict[int, str], window: int, path: Path, title: str) -> None:
    """Returns (dots) and their moving mean per task, and below it success when the store has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = 2 if c.success is not None else 1
    fig, axes = plt.subplots(panels, 1, figsize=(8, 3.2 * panels), dpi=120, sharex=True, squeeze=False)
    for n, t in enumerate(label):
        rows = c.task == t
        axes[0, 0].scatter(c.step[rows], c.ret[rows], s=4, alpha=0.3, color=f"C{n}")
        axes[0, 0].plot(c.step[rows], c.mean_return[rows], color=f"C{n}", label=label[t])
        if c.mean_success is not None:
            axes[1, 0].plot(c.step[rows], c.mean_success[rows], color=f"C{n}", label=label[t])
    axes[0, 0].set_ylabel(f"return (dots: episodes, lines: mean of {window})")
    axes[0, 0].set_title(title)
    axes[0, 0].legend(loc="best", fontsize=7)
    if c.mean_success is not None:
        axes[1, 0].set_ylabel("success")
        axes[1, 0].set_ylim(-0.05, 1.05)
    axes[-1, 0].set_xlabel("env steps")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
