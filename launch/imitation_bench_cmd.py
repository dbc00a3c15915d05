"""`thalamus bench continual --benchmark mw-easy-imitation|cw10-imitation`: skills on a robot arm, one
after another (`launch/bench/imitation.py`), trc beside naive fine-tuning, ER, DER++ and multitask.

    thalamus record --expert --tasks mw-easy --episodes 50 --run-dir runs/mw-easy-50
    thalamus bench continual --benchmark mw-easy-imitation --data runs/mw-easy-50 --device cuda --workers 5

The table gives mean ± std over seeds of the final average success over every task, forgetting
(success right after a task was learned minus final, over all but the last task) and backward
transfer, in points; with `single` among the methods (each task learned alone by a fresh policy), each
sequence method's forward transfer: success right after a task is learned in the sequence minus
success of that task learned alone, over the tasks; the training seconds per run; what each storing
method keeps (windows and bytes); and the columns a trc window is computed in.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from launch.errors import UsageError


def main(args: argparse.Namespace) -> int:
    from agent.policy.diffusion.continual import IMITATION_METHODS

    methods = [m.strip() for m in (args.methods or ",".join(IMITATION_METHODS)).split(",") if m.strip()]
    unknown = [m for m in methods if m not in IMITATION_METHODS]
    if unknown or not methods:
        raise UsageError(f"--methods: unknown for {args.benchmark}: {', '.join(unknown) or '(none given)'}; "
                         f"choose from {', '.join(IMITATION_METHODS)}")
    if not args.data:
        raise UsageError(f"{args.benchmark} learns from expert demonstrations: give --data RUN_DIR (make one with "
                         "`thalamus record --expert --tasks mw-easy --episodes 50 --run-dir runs/mw-easy-50`)")
    for flag, value, low in (("--seeds", args.seeds, 1), ("--seed", args.seed, 0), ("--steps", args.steps, 1),
                             ("--batch", args.batch, 1), ("--episodes", args.episodes, 1),
                             ("--held-out", args.held_out, 0), ("--margin", args.margin, 0), ("--practice", args.practice, 0),
                             ("--shift", args.shift, 0),
                             ("--memory", 1 if args.memory is None else args.memory, 1), ("--workers", args.workers, 1)):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}, got {value}")
    if args.ablate:
        raise UsageError(f"--ablate is for the digits benchmarks; {args.benchmark} has no ablations")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from agent.policy.diffusion.continual import ImitationConfig
    from agent.policy.diffusion.data import DemoDataError
    from envs.tasks import METAWORLD_SEQUENCES
    from launch.bench.imitation import SEQUENCES, load_tasks, run_imitation_benchmark
    from launch.display import stdout_console

    memory = ImitationConfig.memory if args.memory is None else args.memory
    n = len(METAWORLD_SEQUENCES[SEQUENCES[args.benchmark]])
    if "trc" in methods and args.held_out * n >= memory:
        raise UsageError(f"--held-out {args.held_out} for {n} tasks takes all of --memory {memory}; "
                         "hold out fewer windows or give more memory")
    try:
        tasks = load_tasks(args.benchmark, args.data)
    except DemoDataError as exc:
        raise UsageError(str(exc)) from None
    cfg = ImitationConfig(steps=args.steps, batch=args.batch, held_out=args.held_out, margin=args.margin,
                          teach=args.teach, practice=args.practice, shift=args.shift,
                          **({} if args.memory is None else {"memory": args.memory}))
    seeds = list(range(args.seed, args.seed + args.seeds))
    started = time.perf_counter()
    done: dict[str, list[dict]] = {}

    def write(final: bool) -> None:
        """The JSON so far: rewritten after every run, so a stopped benchmark keeps what it finished."""
        if args.json:
            results = summaries(done)
            args.json.write_text(json.dumps({"benchmark": args.benchmark, "tasks": tasks.names, "steps": args.steps,
                                             "batch": args.batch, "held_out": args.held_out, "margin": args.margin,
                                             "teach": args.teach, "practice": args.practice, "shift": args.shift,
                                             "cells": args.cells,
                                             "episodes": args.episodes, "seeds": seeds,
                                             "device": args.device, "complete": final,
                                             "seconds": time.perf_counter() - started, "results": results}, indent=1))

    def finished(name: str, run: dict) -> None:
        done.setdefault(name, []).append(run)
        write(False)
        bar.update(task, last=f"{name} seed {run['seed']}: {run['acc']:.0%}")

    def learned(name: str, seed: int, i: int) -> None:
        bar.update(task, advance=1, last=f"{name} seed {seed}: {tasks.names[i]} learned")

    columns = (TextColumn(f"[bold]{args.benchmark}"), BarColumn(), TextColumn("{task.completed}/{task.total} tasks"),
               TextColumn("{task.fields[last]}"), TimeElapsedColumn())
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task("runs", total=len(methods) * len(seeds) * len(tasks.names), last="")
        runs = run_imitation_benchmark(args.benchmark, methods, seeds, cfg, args.data, args.episodes, args.device,
                                       args.workers, progress=finished, learned=learned, cells=args.cells)
    elapsed = time.perf_counter() - started
    write(True)
    results = summaries(runs)
    table = Table("method", "success %", "forgetting %", "BWT %", "forward transfer %", "s / run", "stored windows",
                  "stored MB", "columns / window",
                  title=f"{args.benchmark} ({', '.join(tasks.names)}), {args.steps} steps a task, {args.episodes} "
                        f"episodes a cell, seeds {seeds[0]}–{seeds[-1]} (mean ± std)", title_justify="left")
    for name, r in results.items():
        table.add_row(name, f"{100 * r['acc']:.1f} ± {100 * r['acc_std']:.1f}",
                      f"{100 * r['forgetting']:.1f} ± {100 * r['forgetting_std']:.1f}", f"{100 * r['bwt']:.1f}",
                      "" if r.get("forward_transfer") is None else f"{100 * r['forward_transfer']:.1f}",
                      f"{r['seconds_per_run']:.0f}", str(r["memory"]["windows"]), f"{r['memory']['bytes'] / 1e6:.2f}",
                      "" if r["columns_per_sample"] is None else f"{r['columns_per_sample']:.2f}")
    console = stdout_console()
    console.print(table)
    console.print(f"{len(methods) * len(seeds)} runs in {elapsed:.0f} s on {args.workers} processes ({args.device})")
    return 0


def summaries(runs: dict[str, list[dict]]) -> dict[str, dict]:
    """Every method's :func:`summary`, and each sequence method's forward transfer where `single` ran."""
    out = {name: summary(rs) for name, rs in runs.items()}
    if runs.get("single"):
        for name, rs in runs.items():
            if name not in ("single", "multitask"):
                out[name]["forward_transfer"] = forward_transfer(rs, runs["single"])
    return out


def forward_transfer(runs: list[dict], alone: list[dict]) -> float:
    """Mean over runs and tasks of success right after a task is learned in the sequence minus the
    success of that task learned alone (the `single` run of the same seed, else the mean of theirs)."""
    n = len(runs[0]["matrix"])
    by_seed = {r["seed"]: [r["matrix"][i][i] for i in range(n)] for r in alone}
    mean = np.mean(list(by_seed.values()), axis=0)
    return float(np.mean([np.mean([r["matrix"][i][i] for i in range(n)] - np.asarray(by_seed.get(r["seed"], mean)))
                          for r in runs]))


def summary(runs: list[dict]) -> dict:
    """A method's runs: means and stds over seeds, R averaged where played (None elsewhere)."""
    out = {key: float(np.mean([r[key] for r in runs])) for key in ("acc", "bwt", "forgetting")}
    out |= {f"{key}_std": float(np.std([r[key] for r in runs], ddof=1)) if len(runs) > 1 else 0.0
            for key in ("acc", "forgetting")}
    n = len(runs[0]["matrix"])
    out["matrix"] = [[None if runs[0]["matrix"][i][j] is None else float(np.mean([r["matrix"][i][j] for r in runs]))
                      for j in range(n)] for i in range(n)]
    cols = [r["columns_per_sample"] for r in runs if r["columns_per_sample"] is not None]
    return out | {"runs": [r["acc"] for r in runs], "seeds": [r["seed"] for r in runs],
                  "seconds_per_run": float(np.mean([r["seconds"] for r in runs])), "memory": runs[0]["memory"],
                  "columns_per_sample": float(np.mean(cols)) if cols else None, "plays": [r["plays"] for r in runs],
                  "choices": [r["choices"] for r in runs], "practice": [r["practice"] for r in runs],
                  "matrices": [r["matrix"] for r in runs]}
