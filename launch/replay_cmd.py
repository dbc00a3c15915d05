"""`thalamus replay RUN_DIR`: the forgetting report of a task-sequence run.

    thalamus replay runs/split-digits-20261201-101500
    thalamus replay runs/cartpole-physics-20261201-103000 --json report.json --png heatmap.png

Replays the stored episodes of every task through each task-boundary checkpoint
(`checkpoints/task_<i>.pt`) and prints the matrix R (R[i][j]: task j after learning task i) with
the average, backward transfer, forgetting and the area under the forgetting curve.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from launch.errors import UsageError

if TYPE_CHECKING:
    from agent.learner.scoring import RunScore


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("replay", help="replay a task-sequence run through its checkpoints: the forgetting report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run made with `thalamus run --tasks NAME`")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the report as a JSON object to PATH")
    p.add_argument("--png", type=Path, metavar="PATH",
                   help="where the heat-map of R goes (default: RUN_DIR/forgetting.png)")
    p.set_defaults(func=main)


def _check_out(flag: str, path: Path) -> None:
    """An output path whose folder exists, checked before the (slow) replay."""
    if path.is_dir() or not path.parent.is_dir():
        raise UsageError(f"{flag} {path}: give a file path in an existing folder")


def heatmap(result: RunScore, path: Path) -> None:
    """R as an annotated heat-map: rows the checkpoint after task i, columns the task scored."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm, Normalize

    r = np.asarray(result.report.matrix)
    k = len(result.tasks)
    side = 1.6 + 1.1 * k
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    accuracy = result.metric == "accuracy"
    # accuracy on a fixed 0..1 scale; losses, which span decades as a model learns, on a log scale
    if accuracy:
        norm = Normalize(0.0, 1.0)
    elif np.isfinite(r).all() and r.min() > 0:
        norm = LogNorm(r.min(), r.max())
    else:
        norm = Normalize()
    image = ax.imshow(r, cmap="viridis" if accuracy else "viridis_r", norm=norm)
    fig.colorbar(image, ax=ax, label=result.metric + ("" if accuracy else " (lower is better)"))
    for i in range(k):
        for j in range(k):
            red, green, blue, _ = image.cmap(image.norm(r[i, j]))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark cells
            ax.text(j, i, f"{r[i, j]:.2f}" if accuracy else f"{r[i, j]:.3g}", ha="center", va="center",
                    color="white" if dark else "black", fontsize=9)
    ax.set_xticks(range(k), result.tasks, rotation=30, ha="right")
    ax.set_yticks(range(k), result.tasks)
    ax.set_xlabel("task scored (j)")
    ax.set_ylabel("after learning task (i)")
    ax.set_title(f"{result.sequence}: {result.metric} R[i][j]")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _num(value: float, sign: str = "") -> str:
    """``value`` to 3 significant digits: 0.530, 0.000123, 2.50e-05 (``sign="+"`` shows a plus)."""
    return f"{value:{sign}#.3g}".rstrip(".")


def _print(result: RunScore) -> None:
    from rich.table import Table

    from launch.display import stdout_console

    rep = result.report
    better = "higher is better" if result.metric == "accuracy" else "lower is better"
    table = Table("after task", *result.tasks, title=f"{result.sequence}: {result.metric} R[i][j] ({better})",
                  title_justify="left")
    for name, row in zip(result.tasks, rep.matrix):
        table.add_row(name, *(_num(v) for v in row))
    console = stdout_console()
    console.print(table)
    console.print(f"average {result.metric} (last row) {_num(rep.average)}   backward transfer "
                  f"{_num(rep.backward_transfer, '+')}   forgetting {_num(rep.forgetting)}   "
                  f"forgetting AUC {_num(rep.forgetting_auc)}")


def main(args: argparse.Namespace) -> int:
    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise UsageError(f"no run at '{run_dir}': the directory does not exist")
    if not (run_dir / "run.json").is_file():
        raise UsageError(f"'{run_dir}' is not a thalamus run: it has no run.json")
    png = args.png or run_dir / "forgetting.png"
    _check_out("--png", png)
    if args.json is not None:
        _check_out("--json", args.json)

    from agent.learner.scoring import ScoringError, score_run

    try:
        result = score_run(run_dir)
    except ScoringError as exc:
        raise UsageError(str(exc)) from None
    _print(result)
    heatmap(result, png)
    written = [f"the heat-map of R to {png}"]
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        written.append(f"the report to {args.json}")
    from launch.display import stdout_console

    stdout_console().print("wrote " + " and ".join(written), soft_wrap=True, highlight=False)
    return 0
