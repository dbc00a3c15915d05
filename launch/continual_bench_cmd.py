"""`thalamus bench continual`: our continual learner (trc) beside the baselines on a task sequence.

    thalamus bench continual --benchmark permuted-digits
    thalamus bench continual --benchmark split-digits --ablate --json split.json
    thalamus bench continual --benchmark mw-easy-imitation --data runs/mw-easy-50 --device cuda

The digits sequences are below; `mw-easy-imitation` and `cw10-imitation` teach a diffusion policy
Meta-World skills one after another from expert demonstrations (`launch/imitation_bench_cmd.py`).

Every method trains task after task (SGD, batch 32, 20 epochs a task) and is scored on every task
after each one (the matrix R); a table gives mean ± std over seeds of the average accuracy after
the last task, backward transfer and forgetting (best-so-far minus final), in points, and the
training seconds per run (and, for trc, the columns a test sample is computed in). Methods that
store samples get `--memory` samples each. `--ablate` adds trc without its router, its spectral
memory and its cache.

`--order` picks the test streams: `per-task` plays each task's test set as its own stream, `mixed`
one stream of every task's test samples shuffled by the seed (the same order for every method),
`both` (the default) prints a table for each. Every method, trc included, scores each sample on its
own, so the two orders agree unless a method reads the stream around a sample.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from launch.errors import UsageError

DIGITS = ("permuted-digits", "split-digits", "split-digits-task")
IMITATION = ("mw-easy-imitation", "cw10-imitation")  # launch/bench/imitation.py's SEQUENCES
IMITATION_DEFAULTS = {"steps": 1000, "batch": 256, "held_out": 32, "margin": 3.0, "teach": "better", "practice": 0, "shift": 0.5}  # ImitationConfig's (the CLI starts without torch)
ORDER_CHOICES = {"per-task": ("per-task",), "mixed": ("mixed",), "both": ("per-task", "mixed")}


def add_parser(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("continual", help="continual learning: trc vs naive, ewc, er, derpp, gpm, joint",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", default="permuted-digits", choices=DIGITS + IMITATION,
                   help="the task sequence (default: %(default)s)")
    p.add_argument("--methods", default=None,
                   help="comma-separated; digits: trc, naive, ewc, er, derpp, gpm, joint; imitation: trc, naive, "
                        "er, derpp, multitask, single (each task alone: the forward-transfer reference) "
                        "(default: all of the benchmark's)")
    p.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds per method (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first seed: seeds S..S+N-1 (default: %(default)s)")
    p.add_argument("--memory", type=int, default=None, metavar="N",
                   help="samples (imitation: windows) a method may store (default: 200; imitation 2000)")
    p.add_argument("--ablate", action="store_true",
                   help="add trc without router, spectral memory, cache (default: off)")
    p.add_argument("--order", default="both", choices=list(ORDER_CHOICES),
                   help="test streams: each task's own, one mixed stream, or both (default: %(default)s)")
    p.add_argument("--workers", type=int, default=2, metavar="N", help="processes (default: %(default)s)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here (default: none)")
    p.add_argument("--data", type=Path, nargs="+", metavar="RUN_DIR",
                   help="imitation: stores of expert demonstrations of every task of the sequence, made by "
                        "`thalamus record --expert --tasks mw-easy|cw10` (required there)")
    p.add_argument("--steps", type=int, default=IMITATION_DEFAULTS["steps"], metavar="N",
                   help="imitation: optimizer steps a task (default: %(default)s)")
    p.add_argument("--batch", type=int, default=IMITATION_DEFAULTS["batch"], metavar="N",
                   help="imitation: windows a step, and replayed windows a step (default: %(default)s)")
    p.add_argument("--held-out", type=int, default=IMITATION_DEFAULTS["held_out"], metavar="N",
                   help="imitation, trc: windows kept aside a task (part of --memory, never replayed) to choose "
                        "the column that plays it; the newest column replays the stored windows "
                        "(0: each task's own column, no replay; default: %(default)s)")
    p.add_argument("--margin", type=float, default=IMITATION_DEFAULTS["margin"], metavar="SE",
                   help="imitation, trc: standard errors (of the paired difference on the kept windows) by which "
                        "the newest column may act worse than a task's column and still play it (default: %(default)s)")
    p.add_argument("--teach", choices=("better", "all"), default=IMITATION_DEFAULTS["teach"],
                   help="imitation, trc: the newest column replays an earlier task's windows against the noise "
                        "prediction of the column that plays it, on every such window (all) or only where that "
                        "column denoises it better than the newest one (default: %(default)s)")
    p.add_argument("--shift", type=float, default=IMITATION_DEFAULTS["shift"], metavar="STDS",
                   help="imitation, trc: the column that plays an earlier task also teaches the newest one on its "
                        "windows shifted off the demonstrations by this many stds of each state dim within that "
                        "task, where a drifting arm goes (0: off; default: %(default)s)")
    p.add_argument("--practice", type=int, default=IMITATION_DEFAULTS["practice"], metavar="N",
                   help="imitation, trc: episodes it plays of each task as the task ends (training seeds, not the "
                        "evaluation's); a task its column masters there stays with that column (0: no practice; "
                        "default: %(default)s)")
    p.add_argument("--episodes", type=int, default=10, metavar="N",
                   help="imitation: rollouts of each learned task after each task (default: %(default)s)")
    p.add_argument("--cells", choices=("all", "metrics"), default="all",
                   help="imitation: all plays every learned task after each task (the whole success matrix); "
                        "metrics only the cells the metrics read, each task right after it is learned and "
                        "every task at the end (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="imitation: torch device for training and acting (default: %(default)s)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.benchmark in IMITATION:
        from launch.imitation_bench_cmd import main as imitation

        return imitation(args)
    from agent.learner.trc import ABLATIONS
    from launch.bench.continual import METHODS

    methods = [m.strip() for m in (args.methods or ",".join(METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise UsageError(f"--methods: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(METHODS)}")
    for flag, value, low in (("--seeds", args.seeds, 1), ("--seed", args.seed, 0), ("--memory", 1 if args.memory is None else args.memory, 1),
                             ("--workers", args.workers, 1)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    if args.ablate:
        methods += [f"trc-no-{part}" for part in ABLATIONS]
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from launch.bench.continual import ContinualConfig, run_benchmark
    from launch.display import stdout_console

    seeds = list(range(args.seed, args.seed + args.seeds))
    orders = ORDER_CHOICES[args.order]
    args.memory = ContinualConfig().memory if args.memory is None else args.memory
    started = time.perf_counter()
    columns = (TextColumn(f"[bold]{args.benchmark}"), BarColumn(), TextColumn("{task.completed}/{task.total} runs"),
               TextColumn("{task.fields[last]}"), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("runs", total=len(methods) * len(seeds), last="")
        runs = run_benchmark(args.benchmark, methods, seeds, ContinualConfig(memory=args.memory), args.workers,
                             progress=lambda name, r: bar.update(task, advance=1, last=f"{name} seed {r['seed']}: " + ", ".join(
                                 f"{o} {r[o]['acc']:.1%}" for o in orders)), orders=orders)
    elapsed = time.perf_counter() - started
    results = {name: _summary(rs, orders) for name, rs in runs.items()}
    console = stdout_console()
    for order in orders:
        table = Table("method", "ACC %", "BWT %", "forgetting %", "AUC forgetting %", "s / run", "columns / sample",
                      title=f"{args.benchmark}, {_TITLES[order]}, memory {args.memory}, seeds {seeds[0]}–{seeds[-1]} "
                            "(mean ± std)", title_justify="left")
        for name, r in results.items():
            o = r if order == "per-task" else r["mixed"]
            table.add_row(name, f"{100 * o['acc']:.1f} ± {100 * o['acc_std']:.1f}",
                          f"{100 * o['bwt']:.1f} ± {100 * o['bwt_std']:.1f}",
                          f"{100 * o['forgetting']:.1f} ± {100 * o['forgetting_std']:.1f}",
                          f"{100 * o['forgetting_auc']:.1f}", f"{r['seconds_per_run']:.1f}",
                          f"{r['columns_per_sample']:.2f}" if "columns_per_sample" in r else "")
        console.print(table)
    if "trc" in results and "derpp" in results:
        console.print(f"trc's training time per run: {results['trc']['seconds_per_run'] / results['derpp']['seconds_per_run']:.2f}× DER++'s")
    console.print(f"{len(methods) * len(seeds)} runs in {elapsed:.0f} s on {args.workers} processes")
    if args.json:
        args.json.write_text(json.dumps({"benchmark": args.benchmark, "memory": args.memory, "seeds": seeds,
                                         "orders": list(orders), "seconds": elapsed, "results": results}, indent=1))
    return 0


_TITLES = {"per-task": "each task's test set as its own stream", "mixed": "one stream mixing every task's test samples"}


def _summary(runs: list[dict], orders: tuple[str, ...]) -> dict:
    """A method's runs in the JSON's shape: the per-task order's figures at the top (when scored),
    the mixed order's under ``mixed``; each mean and std over seeds, R averaged."""
    import numpy as np

    def scores(order: str) -> dict:
        rs = [r[order] for r in runs]
        out = {key: float(np.mean([r[key] for r in rs])) for key in ("acc", "bwt", "forgetting", "forgetting_auc")}
        out |= {f"{key}_std": float(np.std([r[key] for r in rs], ddof=1)) if len(rs) > 1 else 0.0
                for key in ("acc", "bwt", "forgetting")}
        return out | {"matrix": np.mean([r["matrix"] for r in rs], axis=0).tolist(), "runs": [r["acc"] for r in rs]}

    summary = scores("per-task") if "per-task" in orders else {}
    if "mixed" in orders:
        summary["mixed"] = scores("mixed")
    summary |= {"seconds_per_run": float(np.mean([r["seconds"] for r in runs])), "seeds": [r["seed"] for r in runs]}
    if "columns_per_sample" in runs[0]:
        summary["columns_per_sample"] = float(np.mean([r["columns_per_sample"] for r in runs]))
    return summary
