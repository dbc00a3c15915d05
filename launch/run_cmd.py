"""`thalamus run`: launch the agent's actors against an environment and record every step.

    thalamus run                                   # CartPole-v1, a short demo
    thalamus run --env CartPole-v1 --steps 100000  # learns to balance (return ≥ 400)
    thalamus run --env Reacher-v5 --steps 2000 --run-dir runs/reacher --json
    thalamus run --tasks cartpole-physics --steps 40000  # 4 tasks in turn, a checkpoint after each
    thalamus run --tasks split-digits --steps-per-task 4000
    thalamus run --resume runs/reacher             # go on with a stopped run (Ctrl-C, crash, kill)
    thalamus run --resume runs/reacher --steps 50000   # ... to a larger budget

A resumed run keeps every episode its store committed, steps on from there to the run's budget and
takes its models from the newest checkpoint (saved every 30 s, at task boundaries and at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import subprocess
import sys
from dataclasses import replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from launch.errors import UsageError

if TYPE_CHECKING:
    from agent.resume import ResumePoint
    from agent.runtime import AgentConfig
    from envs.tasks import TaskSequence

DEFAULT_ENV = "CartPole-v1"
DEFAULT_STEPS = 20_000


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an agent against an environment, recording every step",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="go on with a stopped run from its store and newest checkpoint, with its own "
                             "settings (give only --steps, --device, --address, --json, --checkpoint-every)")
    source.add_argument("--env", metavar="ID",
                        help="Gymnasium id, e.g. CartPole-v1, Acrobot-v1, Pendulum-v1, Reacher-v5, "
                             f"InvertedPendulum-v5, HalfCheetah-v5 (default: {DEFAULT_ENV})")
    source.add_argument("--tasks", metavar="NAME",
                        help="a task sequence, learned one task after another with a checkpoint at each "
                             "boundary: cartpole-physics, split-digits, split-digits-task, permuted-digits")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--steps", type=int, metavar="N",
                        help=f"total env steps over all envs (default: {DEFAULT_STEPS:,}); "
                             "with --tasks, split evenly over the tasks")
    budget.add_argument("--episodes", type=int, metavar="N", help="stop after N finished episodes")
    budget.add_argument("--steps-per-task", type=int, metavar="N", help="with --tasks: env steps of each task")
    p.add_argument("--run-dir", type=Path, metavar="DIR",
                   help="where run.json and store.zarr go (default: runs/ENV-TIMESTAMP)")
    p.add_argument("--seed", type=int, metavar="S", help="seed of envs and models (default: 0)")
    p.add_argument("--num-envs", type=int, metavar="N",
                   help="envs stepped in parallel, batched through perception and policy (default: 8)")
    p.add_argument("--frame-size", type=int, metavar="PX", help="camera frame side (default: 64)")
    p.add_argument("--device", choices=["cpu", "cuda"],
                   help="where perception, captioner and learner run; PPO stays on the CPU "
                        "(default: cpu; with --resume, the run's)")
    p.add_argument("--captioner", metavar="auto|off|PT",
                   help="captioner checkpoint whose captions of every frame are shown live and stored per step; "
                        "auto (default): the shipped one trained on this env, if any (CartPole-v1)")
    p.add_argument("--checkpoint-every", type=float, default=30.0, metavar="SECONDS",
                   help="how often the models are saved to RUN_DIR/checkpoints/latest.pt, which --resume "
                        "goes on from (default: 30)")
    p.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster: 'auto' or HOST:PORT (default: start a local one)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object on stdout")
    p.set_defaults(func=main)


_ONLY_NEW = ("env", "tasks", "episodes", "steps_per_task", "run_dir", "seed", "num_envs", "frame_size", "captioner")


def _validate(args: argparse.Namespace) -> None:
    for flag, value, low, high in (("--steps", args.steps, 1, 10**10), ("--episodes", args.episodes, 1, 10**8),
                                   ("--steps-per-task", args.steps_per_task, 1, 10**10),
                                   ("--num-envs", args.num_envs, 1, 512), ("--frame-size", args.frame_size, 8, 1024),
                                   ("--seed", args.seed, 0, 2**31 - 1)):
        if value is not None and not low <= value <= high:
            raise UsageError(f"{flag} must be between {low:,} and {high:,}, got {value}")
    if not 0.1 <= args.checkpoint_every <= 86_400:
        raise UsageError(f"--checkpoint-every must be between 0.1 and 86,400 seconds, got {args.checkpoint_every}")
    if args.tasks is None and args.steps_per_task is not None:
        raise UsageError("--steps-per-task needs --tasks NAME; for one env give --steps")
    if args.tasks is not None and args.episodes is not None:
        raise UsageError("--episodes cannot be used with --tasks: a task sequence's budget is "
                         "--steps (the total) or --steps-per-task")
    if args.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    if args.resume is not None:
        given = [name for name in _ONLY_NEW if getattr(args, name) is not None]
        if given:
            raise UsageError(f"--resume goes on with the run's own settings: leave out --{given[0].replace('_', '-')} "
                             "(with --resume give only --steps, --device, --address, --json, --checkpoint-every)")
        return
    if args.run_dir is not None and (args.run_dir / "store.zarr").exists():
        raise UsageError(f"--run-dir {args.run_dir} already holds a run; choose a new directory, "
                         f"or go on with it: thalamus run --resume {args.run_dir}")
    defaults = {"seed": 0, "num_envs": 8, "frame_size": 64, "device": "cpu", "captioner": "auto"}
    for name, value in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, value)


def _caption_vocab(captioner: Path | None) -> list[str] | None:
    """The words the store's ``caption`` token ids stand for (token i is word i)."""
    if captioner is None:
        return None
    from agent.perception.train import checkpoint_config

    return list(checkpoint_config(captioner).vocab)


def _versions() -> dict[str, str]:
    out = {}
    for pkg in ("thalamus", "torch", "ray", "gymnasium", "mujoco", "zarr", "numpy"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "missing"
    return out


def _git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _captioner(choice: str, env_id: str) -> Path | None:
    """The checkpoint ``--captioner`` names (None: no captions); resolving it imports triton, which
    must happen before any MuJoCo render in this process."""
    if choice == "off":
        return None
    from agent.perception.live import env_checkpoint
    from agent.perception.train import checkpoint_meta

    if choice == "auto":
        return env_checkpoint(env_id)
    path = Path(choice)
    if not path.is_file():
        raise UsageError(f"--captioner {choice}: no such file; give a checkpoint from `thalamus train captioner`, "
                         "auto or off")
    try:
        checkpoint_meta(path)
    except ValueError as exc:
        raise UsageError(f"--captioner: {exc}") from None
    return path.resolve()


def _plain(value: Any) -> Any:
    """``value`` with every NaN float (e.g. the mean return of a run with no finished episode) as None,
    so the summary is plain JSON for run.json and ``--json``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _task_sequence(args: argparse.Namespace) -> TaskSequence:
    """The sequence ``--tasks`` names, with its step budget checked."""
    from envs.tasks import task_sequence

    try:
        seq = task_sequence(args.tasks)
    except ValueError as exc:
        raise UsageError(f"--tasks: {exc}") from None
    if args.steps is not None and args.steps < seq.n_tasks:
        raise UsageError(f"--steps {args.steps} is less than one step for each of {seq.name}'s "
                         f"{seq.n_tasks} tasks; give at least --steps {seq.n_tasks}")
    return seq


def _probe(name: str, seq: TaskSequence | None, frame_size: int) -> None:
    """Make, reset and close one env: unknown ids fail here, before Ray starts, and so does a
    renderer that cannot start."""
    import envs

    probe = envs.make(name, frame_size=frame_size) if seq is None else seq.make(0, frame_size=frame_size)
    probe.reset()
    probe.close()


def main(args: argparse.Namespace) -> int:
    _validate(args)
    if args.resume is not None:
        return _resume(args)
    seq = _task_sequence(args) if args.tasks is not None else None
    name = seq.name if seq is not None else (args.env or DEFAULT_ENV)
    # --captioner auto over tasks: the captioner of the env the tasks vary, if any (none for digits)
    captioner = _captioner(args.captioner, name if seq is None else seq.base_env or seq.name)
    _probe(name, seq, args.frame_size)

    from agent.runtime import AgentConfig
    from memory import write_manifest

    steps = None if args.episodes is not None else (args.steps or DEFAULT_STEPS)
    sequence = {}
    if seq is not None:  # every task gets the same whole number of batched steps
        per_task = args.steps_per_task or math.ceil(steps / seq.n_tasks)
        per_task = math.ceil(per_task / args.num_envs) * args.num_envs
        steps = per_task * seq.n_tasks
        sequence = {"sequence": seq.name, "task_names": list(seq.names), "steps_per_task": per_task}
    cfg = replace(AgentConfig(), env_id=name, tasks=args.tasks, steps=steps, episodes=args.episodes,
                  num_envs=args.num_envs, frame_size=args.frame_size, seed=args.seed, device=args.device,
                  captioner=str(captioner) if captioner else None, checkpoint_every_s=args.checkpoint_every)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.run_dir or Path("runs") / f"{name}-{stamp}").resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_manifest(run_dir, {"name": run_dir.name, "command": sys.argv, "config": cfg.to_dict(), **sequence,
                             "caption_vocab": _caption_vocab(captioner),
                             "versions": _versions(), "git_commit": _git_commit(),
                             "started": _now(), "ended": None, "status": "running"})
    return _drive(args, cfg, run_dir, None)


def _resume(args: argparse.Namespace) -> int:
    """``--resume RUN_DIR``: the run's config from run.json, where its store stopped, and go on."""
    from agent.resume import resume_point
    from agent.runtime import AgentConfig
    from memory import StoreBusy, StoreError, read_manifest, update_manifest

    run_dir = args.resume.resolve()
    try:
        manifest = read_manifest(run_dir)
    except StoreError as exc:
        raise UsageError(f"--resume: {exc}") from None
    try:
        cfg = AgentConfig.from_dict(manifest.get("config") or {})
        started = dt.datetime.fromisoformat(manifest["started"]).timestamp()
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"--resume: {run_dir / 'run.json'} holds no config this version can run: {exc}") from None
    from envs.tasks import task_sequence

    try:
        seq = task_sequence(cfg.tasks) if cfg.tasks else None
    except ValueError as exc:
        raise UsageError(f"--resume: {run_dir / 'run.json'} names a task sequence this version lacks: {exc}") from None
    per_task = manifest.get("steps_per_task") if seq is not None else None
    if seq is not None and args.steps is not None:
        raise UsageError(f"--steps: a task sequence's budget is fixed ({per_task} steps per task); "
                         f"resume it without --steps")
    if args.steps is not None:  # a new total budget, in steps
        cfg = replace(cfg, steps=args.steps, episodes=None)
    if args.device is not None:
        cfg = replace(cfg, device=args.device)
    cfg = replace(cfg, checkpoint_every_s=args.checkpoint_every)
    if cfg.captioner is not None and not Path(cfg.captioner).is_file():
        raise UsageError(f"--resume: the run's captioner checkpoint {cfg.captioner} is gone; put it back "
                         "to go on with this run")
    try:
        point = resume_point(run_dir, started, per_task)
    except StoreBusy:
        raise UsageError(f"--resume: {run_dir} is still being written by a running `thalamus run`; "
                         "stop that run (Ctrl-C) first") from None
    except StoreError as exc:
        raise UsageError(f"--resume: {exc}") from None
    if seq is not None and point.task >= seq.n_tasks:
        raise UsageError(f"--resume: {run_dir} has finished all {seq.n_tasks} tasks of {seq.name}; nothing to do")
    if cfg.steps is not None and point.steps >= cfg.steps:
        raise UsageError(f"--resume: {run_dir} already holds {point.steps:,} of its {cfg.steps:,} steps; "
                         f"give --steps N (more than {point.steps:,}) to go on")
    if cfg.episodes is not None and point.episodes >= cfg.episodes:
        raise UsageError(f"--resume: {run_dir} already holds {point.episodes:,} of its {cfg.episodes:,} episodes; "
                         f"give --steps N to go on for N steps in all")
    if cfg.captioner is not None:
        _captioner(cfg.captioner, cfg.env_id)  # checks it (and imports triton before any MuJoCo render)
    _probe(cfg.env_id, seq, cfg.frame_size)
    resumes = manifest.get("resumes", []) + [{
        "at": _now(), "command": sys.argv, "from_steps": point.steps, "from_episodes": point.episodes,
        "task": point.task, "checkpoint": point.checkpoint.name if point.checkpoint else None}]
    update_manifest(run_dir, config=cfg.to_dict(), resumes=resumes, ended=None, status="running")
    return _drive(args, cfg, run_dir, point)


def _drive(args: argparse.Namespace, cfg: AgentConfig, run_dir: Path, resume: ResumePoint | None) -> int:
    """Start the actors, run with a live display, record how it ended in run.json, print the summary."""
    from agent.runtime import Agent
    from launch import ray_session
    from launch.display import RunDisplay, stdout_console, summary_table
    from memory import update_manifest

    summary_out = sys.stdout
    if args.json:  # Ray's driver prints cluster notices (e.g. a worker that died) on stdout, at any time
        sys.stdout = sys.stderr  # until exit: --json's stdout is the summary alone
    ray_session.connect(args.address)
    agent = Agent(cfg, run_dir, use_ray=True, resume=resume)
    total, unit = (cfg.steps, "steps") if cfg.steps is not None else (cfg.episodes, "episodes")
    try:
        with RunDisplay(total, unit, enabled=not args.json, start_steps=resume.steps if resume else 0) as display:
            summary = agent.run(on_progress=display.update)
    except BaseException:
        update_manifest(run_dir, ended=_now(), status="failed")
        raise
    summary = _plain(summary)
    update_manifest(run_dir, ended=_now(), status="interrupted" if summary["interrupted"] else "completed",
                    summary=summary)
    if args.json:
        print(json.dumps(summary), file=summary_out, flush=True)
    else:
        stdout_console().print(summary_table(summary))
    return 130 if summary["interrupted"] else 0
