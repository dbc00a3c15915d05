"""`thalamus record --expert`: scripted-expert demonstrations into a run store.

    thalamus record --env Meta-World/pick-place-v3 --expert --episodes 50
    thalamus record --tasks cw10 --expert --episodes 20 --run-dir runs/cw10-demos --json

Plays Meta-World's scripted expert for every task and records each episode (frames, state, actions,
rewards, success, and captions with --captioner) into a store of the layout `thalamus run` writes;
run.json says the source is `expert`. Episodes are seeded apart from training and evaluation
(`envs/seeds.py`). Failed episodes are kept too; the report gives each task's success rate.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from launch.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("record", help="record a scripted expert's episodes into a run store (demonstrations)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    what = p.add_mutually_exclusive_group()
    what.add_argument("--env", metavar="ID", help="a Meta-World env, e.g. Meta-World/pick-place-v3")
    what.add_argument("--tasks", metavar="NAME", help="every task of a Meta-World sequence: cw10 or mw-easy")
    p.add_argument("--expert", action="store_true", help="play the env's scripted expert (the only source so far)")
    p.add_argument("--episodes", type=int, default=20, metavar="N", help="episodes per task")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="picks the demonstration seeds (envs/seeds.py)")
    p.add_argument("--frame-size", type=int, default=64, metavar="PX", help="side of the square camera frame")
    p.add_argument("--camera", metavar="NAME", help="Meta-World camera (default corner2; frames upright)")
    p.add_argument("--captioner", metavar="PT", help="also store each frame's caption by this captioner checkpoint")
    p.add_argument("--run-dir", type=Path, metavar="DIR", help="where the store goes (default runs/LABEL-expert-TIME)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=main)


def _check(args: argparse.Namespace) -> None:
    if not args.expert:
        raise UsageError("say what plays: --expert (the env's scripted expert)")
    if args.env is None and args.tasks is None:
        raise UsageError("give --env ID or --tasks NAME")
    if not 1 <= args.episodes <= 100_000:
        raise UsageError(f"--episodes must be between 1 and 100,000, got {args.episodes}")
    if not 8 <= args.frame_size <= 512:
        raise UsageError(f"--frame-size must be between 8 and 512 pixels, got {args.frame_size}")
    if args.captioner is not None and not Path(args.captioner).is_file():
        raise UsageError(f"--captioner {args.captioner}: no such file")
    if args.run_dir is not None and (args.run_dir / "store.zarr").exists():
        raise UsageError(f"--run-dir {args.run_dir} already holds a store; choose a new directory")


def main(args: argparse.Namespace) -> int:
    _check(args)
    from agent.demonstrations import DemoTasks
    from envs.options import EnvOptions
    from memory import update_manifest, write_manifest

    try:
        tasks = DemoTasks.of_sequence(args.tasks) if args.tasks else DemoTasks.of_env(args.env)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    options = EnvOptions(camera=args.camera)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.run_dir or Path("runs") / f"{tasks.label.replace('/', '-')}-expert-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    captioner = Path(args.captioner).resolve() if args.captioner else None
    total = args.episodes * len(tasks.env_ids)
    write_manifest(run_dir, {
        "name": run_dir.name, "command": sys.argv, "source": "expert",
        "config": {"env_id": tasks.env_ids[0] if tasks.sequence is None else tasks.label, "tasks": tasks.sequence,
                   "episodes": total, "frame_size": args.frame_size, "seed": args.seed, "camera": args.camera,
                   "captioner": str(captioner) if captioner else "off"},
        **({"sequence": tasks.sequence, "task_names": [t.split("/", 1)[1] for t in tasks.env_ids]}
           if tasks.sequence else {}),
        "caption_vocab": _vocab(captioner), "started": _now(), "ended": None, "status": "running"})
    try:
        records = _record(args, tasks, run_dir, options, captioner, total)
    except KeyboardInterrupt:
        update_manifest(run_dir, status="interrupted", ended=_now())
        raise
    except Exception as exc:
        update_manifest(run_dir, status="failed", ended=_now(), error=str(exc).splitlines()[0] if str(exc) else "")
        raise
    report = {"run_dir": str(run_dir), "source": "expert", "episodes": sum(r.episodes for r in records),
              "steps": sum(r.steps for r in records),
              "success_rate": sum(r.successes for r in records) / max(1, sum(r.episodes for r in records)),
              "per_task": {r.name: {"episodes": r.episodes, "success_rate": r.success_rate,
                                    "mean_length": r.steps / r.episodes} for r in records}}
    update_manifest(run_dir, status="completed", ended=_now(), report=report)
    _show(args, report)
    return 0


def _record(args: argparse.Namespace, tasks: Any, run_dir: Path, options: Any, captioner: Path | None,
            total: int) -> list[Any]:
    """Record with a progress bar on stderr."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.demonstrations import record_expert

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} episodes"),
               TimeElapsedColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        job = bar.add_task("recording", total=total)
        return record_expert(tasks, run_dir, args.episodes, args.frame_size, args.seed, options, captioner,
                             progress=lambda done, name: bar.update(job, completed=done, description=name))


def _show(args: argparse.Namespace, report: dict[str, Any]) -> None:
    if args.json:
        print(json.dumps(report))
        return
    from rich.table import Table

    from launch.display import stdout_console

    table = Table("task", "episodes", "success", "mean length", title=f"expert demonstrations in {report['run_dir']}",
                  title_justify="left")
    for name, r in report["per_task"].items():
        table.add_row(name, str(r["episodes"]), f"{r['success_rate']:.0%}", f"{r['mean_length']:.0f} steps")
    table.add_row("all", str(report["episodes"]), f"{report['success_rate']:.0%}", f"{report['steps']:,} steps in all")
    stdout_console().print(table)


def _vocab(captioner: Path | None) -> list[str] | None:
    if captioner is None:
        return None
    from agent.perception.train import checkpoint_config

    return list(checkpoint_config(captioner).vocab)


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
