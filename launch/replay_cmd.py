"""`thalamus replay RUN_DIR`: the forgetting report of a task-sequence run.

    thalamus replay runs/mw-easy-20261201-101500                       # 10 fresh episodes per cell
    thalamus replay runs/mw-easy-20261201-101500 --reference refs/ --json report.json
    thalamus replay runs/cartpole-physics-20261201-103000 --episodes 2 --max-steps 50   # a quick look

Plays every task-boundary checkpoint (`checkpoints/task_<i>.pt`) on fresh evaluation episodes of
every task — the same seeds for each checkpoint, as `thalamus eval` plays them — and prints the
matrix R (R[i][j]: the score on task j after learning task i; the success rate for Meta-World's
sequences, the mean return otherwise) with the average, backward transfer, forgetting, the area
under the forgetting curve and Continual World's performance, forgetting and forward transfer
(against single-task runs in `--reference DIR`: agent/learner/transfer.py for its layout).

The evaluation is stored in RUN_DIR/replay/ keyed by the checkpoints' digests and the options, so a
second replay with the same options plays nothing (agent/learner/scoring.py).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from launch.errors import UsageError

if TYPE_CHECKING:
    from rich.progress import Progress

    from agent.evaluation import Episode
    from agent.learner.scoring import RunScore


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `replay` command to the `thalamus` parser."""
    p = sub.add_parser("replay", help="play a task-sequence run's checkpoints on every task: the forgetting report",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run made with `thalamus run --tasks NAME`")
    p.add_argument("--episodes", type=int, default=10, metavar="N", help="fresh episodes per checkpoint and task")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="episode n starts from env seed eval_seed(S, n)")
    p.add_argument("--max-steps", type=int, default=10_000, metavar="N",  # EvalConfig's (a test keeps them the same)
                   help="cut an episode after N steps (default: beyond any env's own limit; smaller for a quick look)")
    p.add_argument("--reference", type=Path, metavar="DIR",
                   help="single-task runs of the sequence's tasks, DIR/TASK/ each, for forward transfer")
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
    from matplotlib.colors import Normalize

    r = np.asarray(result.report.matrix)
    k = len(result.tasks)
    side = 1.6 + 1.1 * k
    fig, ax = plt.subplots(figsize=(side + 1.5, side))
    rate = result.metric == "success rate"
    image = ax.imshow(r, cmap="viridis", norm=Normalize(0.0, 1.0) if rate else Normalize())  # a rate on 0..1
    fig.colorbar(image, ax=ax, label=result.metric)
    for i in range(k):
        for j in range(k):
            red, green, blue, _ = image.cmap(image.norm(r[i, j]))
            dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5  # white text on dark cells
            ax.text(j, i, _cell(result, r[i, j]), ha="center", va="center", color="white" if dark else "black", fontsize=9)
    ax.set_xticks(range(k), result.tasks, rotation=30, ha="right")
    ax.set_yticks(range(k), result.tasks)
    ax.set_xlabel("task scored (j)")
    ax.set_ylabel("after learning task (i)")
    ax.set_title(f"{result.sequence}: {result.metric} R[i][j]")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _num(value: float | None, sign: str = "") -> str:
    """``value`` to 3 significant digits: 0.530, 0.000123, 2.50e-05 (``sign="+"`` shows a plus; None: n/a)."""
    return "n/a" if value is None else f"{value:{sign}#.3g}".rstrip(".")


def _cell(result: RunScore, value: float) -> str:
    """One R[i][j]: a success rate to 2 decimals (0.20, 1.00), a mean return as `_num`."""
    return f"{value:.2f}" if result.metric == "success rate" else _num(value)


def _print(result: RunScore) -> None:
    """R as a table, then the numbers that follow from it and where R came from."""
    from rich.table import Table

    from launch.display import stdout_console

    rep, cfg = result.report, result.evaluation
    cut = f", at most {cfg.max_steps:,} steps" if cfg.max_steps < type(cfg).max_steps else ""
    table = Table("after task", *result.tasks)
    for name, row in zip(result.tasks, rep.matrix):
        table.add_row(name, *(_cell(result, v) for v in row))
    console = stdout_console()
    console.print(f"{result.sequence}: {result.metric} R[i][j] on {cfg.episodes} fresh "
                  f"episode{'s' if cfg.episodes > 1 else ''} of each task (seed {cfg.seed}{cut})",
                  markup=False, highlight=False, soft_wrap=True)
    console.print(table)
    console.print(f"average {result.metric} (last row) {_num(rep.average)}   backward transfer "
                  f"{_num(rep.backward_transfer, '+')}   forgetting {_num(rep.forgetting)}   "
                  f"forgetting AUC {_num(rep.forgetting_auc)}", highlight=False)
    transfer = result.transfer
    console.print(f"Continual World: performance {_num(rep.average)}   forgetting "
                  f"{_num(result.cw_forgetting, '+')}   forward transfer {_num(transfer.value, '+')}", highlight=False)
    if transfer.note:
        console.print(f"  forward transfer: {transfer.note}", markup=False, highlight=False, soft_wrap=True)
    how = (f"played {result.played:,} episodes, stored in" if result.played else "read from the stored evaluation")
    console.print(f"R {how} {result.stored}", markup=False, highlight=False, soft_wrap=True)


class _Bar:
    """A rich progress bar on stderr over the episodes `score_run` plays (left out when stderr is
    not a terminal or nothing is played)."""

    def __init__(self, progress: Progress) -> None:
        self.progress, self.bar = progress, None

    def start(self, episodes: int) -> None:
        """The bar, and torch on one thread, when there is something to play (a stored evaluation
        is read without importing torch)."""
        if episodes:
            import torch

            torch.set_num_threads(1)  # one observation at a time: threads only wait on each other
            self.bar = self.progress.add_task("replay", total=episodes, last="")

    def episode(self, checkpoint: str, episode: Episode) -> None:
        success = "" if episode.success is None else ("  success" if episode.success else "  failure")
        self.progress.update(self.bar, advance=1, description=f"{checkpoint} on {episode.task}",
                             last=f"return {episode.ret:.1f} in {episode.length} steps{success}")


def _score(args: argparse.Namespace) -> RunScore:
    """`score_run` with a progress bar; its errors as one line."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.evaluation import EvalConfig, EvaluationError
    from agent.learner.scoring import ScoringError, score_run
    from agent.learner.transfer import ReferenceRunError

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("episodes"), TextColumn("{task.fields[last]}"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
    cfg = EvalConfig(episodes=args.episodes, seed=args.seed, max_steps=args.max_steps)
    try:
        with progress:
            return score_run(args.run_dir, cfg, args.reference, _Bar(progress))
    except (ScoringError, EvaluationError, ReferenceRunError) as exc:
        raise UsageError(str(exc)) from None


def main(args: argparse.Namespace) -> int:
    """Check the input, score the run (playing what is not stored), print and write the report."""
    run_dir: Path = args.run_dir
    if not run_dir.is_dir():
        raise UsageError(f"no run at '{run_dir}': the directory does not exist")
    if not (run_dir / "run.json").is_file():
        raise UsageError(f"'{run_dir}' is not a thalamus run: it has no run.json")
    if args.max_steps < 1:
        raise UsageError(f"--max-steps must be at least 1, got {args.max_steps}")
    png = args.png or run_dir / "forgetting.png"
    _check_out("--png", png)
    if args.json is not None:
        _check_out("--json", args.json)
    result = _score(args)
    _print(result)
    heatmap(result, png)
    written = [f"the heat-map of R to {png}"]
    if args.json is not None:
        args.json.write_text(json.dumps(result.to_dict(), indent=2) + "\n")
        written.append(f"the report to {args.json}")
    from launch.display import stdout_console

    stdout_console().print("wrote " + " and ".join(written), soft_wrap=True, highlight=False)
    return 0
