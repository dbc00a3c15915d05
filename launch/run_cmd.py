"""`thalamus run`: launch the agent's actors against an environment and record every step.

    thalamus run                                   # CartPole-v1, a short demo
    thalamus run --env CartPole-v1 --steps 100000  # learns to balance (return ≥ 400)
    thalamus run --env Reacher-v5 --steps 2000 --run-dir runs/reacher --json
    thalamus run --tasks cartpole-physics --steps 40000  # 4 tasks in turn, a checkpoint after each
    thalamus run --tasks split-digits --steps-per-task 4000
    thalamus run --resume runs/reacher             # go on with a stopped run (Ctrl-C, crash, kill)
    thalamus run --resume runs/reacher --steps 50000   # ... to a larger budget
    thalamus run --env Meta-World/reach-v3 --policy diffusion:reach-v3.pt --step-cache seacache
                                                   # acts with a trained diffusion policy (no PPO)

Budgets count whole batches: the envs step together, so a run of --steps N ends at the first
multiple of --num-envs at or above N (and says so). A resumed run keeps every episode its store
committed, steps on from there to the run's budget and takes its models from the newest checkpoint
(saved every --checkpoint-every seconds, at task boundaries and at the end).
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import math
import shutil
import signal
import subprocess
import sys
from dataclasses import fields, replace
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.config import AgentConfig, env_resources, policy_choice
from envs.robot import is_robot
from envs.seeds import MAX_SEED
from launch.errors import UsageError

if TYPE_CHECKING:
    from agent.checkpoints import ResumePoint
    from agent.policy.diffusion import DiffusionCheckpoint
    from envs.tasks import TaskSequence

# with --resume, the run's own settings hold; only these may be given
RESUME_FLAGS = ("steps", "device", "checkpoint_every_s", "hop_timeout_s", "view", "view_fps")


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run an agent against an environment, recording every step",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_arguments(AgentConfig, dest="config")
    p.add_argument("--steps-per-task", type=int, metavar="N",
                   help="with --tasks, instead of --steps: env steps of each task (default: --steps split evenly)")
    p.add_argument("--resume", type=Path, metavar="RUN_DIR",
                   help="go on with a stopped run from its store and newest checkpoint, with its own settings "
                        "(give only --steps, --device, --checkpoint-every, --address, --json)")
    p.add_argument("--run-dir", type=Path, metavar="DIR",
                   help="where run.json, store.zarr and checkpoints/ go; must not hold a run (default: runs/ENV-TIMESTAMP)")
    p.add_argument("--address", metavar="ADDR",
                   help="join a running Ray cluster: 'auto' or HOST:PORT (default: start a local one)")
    p.add_argument("--json", action="store_true",
                   help="print the summary as one JSON object on stdout (progress goes to stderr) (default: off)")
    p.set_defaults(func=main)


def _given(args: argparse.Namespace) -> list[str]:
    """The config fields whose flag the user wrote (under any of its spellings)."""
    written = getattr(args, "flags_given", set())
    return [f.name for f in fields(AgentConfig)
            if {_flag(f.name), "--" + f.name, "--" + f.name.replace("_", "-")} & written]


def _flag(name: str) -> str:
    return "--" + {"env_id": "env", "checkpoint_every_s": "checkpoint-every"}.get(name, name.replace("_", "-"))


def _validate(args: argparse.Namespace) -> AgentConfig:
    """The checked config; the budget flags sorted out (``--episodes`` and ``--steps-per-task`` replace ``--steps``)."""
    cfg: AgentConfig = args.config
    given = _given(args)
    for name, low, high in (("steps", 1, 10**10), ("episodes", 1, 10**8), ("num_envs", 1, 512),
                            ("frame_size", 8, 1024), ("seed", 0, MAX_SEED)):
        value = getattr(cfg, name)
        if value is not None and not low <= value <= high:
            raise UsageError(f"{_flag(name)} must be between {low:,} and {high:,}, got {value}")
    if args.steps_per_task is not None and not 1 <= args.steps_per_task <= 10**10:
        raise UsageError(f"--steps-per-task must be between 1 and 10,000,000,000, got {args.steps_per_task}")
    if not 0.1 <= cfg.checkpoint_every_s <= 86_400:
        raise UsageError(f"--checkpoint-every must be between 0.1 and 86,400 seconds, got {cfg.checkpoint_every_s}")
    try:
        env_resources(cfg.env_resources)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if cfg.device == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    if args.resume is not None:
        extra = [n for n in given if n not in RESUME_FLAGS] + (["steps_per_task"] if args.steps_per_task else []) \
            + (["run_dir"] if args.run_dir else [])
        if extra:
            raise UsageError(f"--resume goes on with the run's own settings: leave out {_flag(extra[0])} "
                             "(with --resume give only --steps, --device, --checkpoint-every, --view, --address, --json)")
        return cfg
    _check_view(cfg)
    if cfg.policy is not None:
        try:
            policy_choice(cfg.policy)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    elif cfg.step_cache != "none" or cfg.cache_threshold is not None:
        flag = "--step-cache" if cfg.step_cache != "none" else "--cache-threshold"
        raise UsageError(f"{flag} is for a diffusion policy: add --policy diffusion:PATH, or leave {flag} out")
    budgets = [f for f, on in (("--steps", "steps" in given), ("--episodes", cfg.episodes is not None),
                               ("--steps-per-task", args.steps_per_task is not None)) if on]
    if len(budgets) > 1:
        raise UsageError(f"give one budget: {budgets[0]} or {budgets[1]}, not both")
    if cfg.tasks is not None and "env_id" in given:
        raise UsageError("give --env or --tasks, not both (a task sequence names its own envs)")
    if cfg.tasks is None and args.steps_per_task is not None:
        raise UsageError("--steps-per-task needs --tasks NAME; for one env give --steps")
    if cfg.tasks is not None and cfg.episodes is not None:
        raise UsageError("--episodes cannot be used with --tasks: a task sequence's budget is "
                         "--steps (the total) or --steps-per-task")
    if args.run_dir is not None and (args.run_dir / "store.zarr").exists():
        raise UsageError(f"--run-dir {args.run_dir} already holds a run; choose a new directory, "
                         f"or go on with it: thalamus run --resume {args.run_dir}")
    return replace(cfg, steps=None) if cfg.episodes is not None else cfg


def _check_view(cfg: AgentConfig) -> None:
    """``--view``: a target the viewer can use, and rerun-sdk installed (before anything is started)."""
    if cfg.view is None:
        return
    from viewer.target import ViewError, ViewTarget, require_rerun

    if cfg.view_fps < 0:
        raise UsageError(f"--view-fps must be 0 or more, got {cfg.view_fps}")
    try:
        ViewTarget.parse(cfg.view)
        require_rerun()
    except ViewError as exc:
        raise UsageError(str(exc)) from None


def _caption_vocab(captioner: str | None) -> list[str] | None:
    """The words the store's ``caption`` token ids stand for (token i is word i)."""
    if captioner is None:
        return None
    from agent.perception.train import checkpoint_config

    return list(checkpoint_config(Path(captioner)).vocab)


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


def _captioner(choice: str, env_id: str) -> str | None:
    """The checkpoint ``--captioner`` names, as a path (None: no captions), checked to be a captioner."""
    from agent.perception.live import resolve_captioner
    from agent.perception.train import checkpoint_meta

    path = resolve_captioner(choice, env_id)
    if path is None:
        return None
    if not path.is_file():
        raise UsageError(f"--captioner {choice}: no such file; give a checkpoint from `thalamus train captioner`, "
                         "auto or off")
    try:
        checkpoint_meta(path)
    except ValueError as exc:
        raise UsageError(f"--captioner: {exc}") from None
    return str(path.resolve())


def _check_caption_skip(skip: int, captioner: str | None) -> None:
    """``--caption-skip`` within the gaps the captioner was trained to read."""
    from agent.perception.train import checkpoint_config

    most = max(0, checkpoint_config(Path(captioner)).timing - 1) if captioner is not None else 0
    if skip and captioner is None:
        raise UsageError(f"--caption-skip {skip}: this run has no captioner; leave it out or give --captioner")
    if not 0 <= skip <= most:
        raise UsageError(f"--caption-skip {skip}: this captioner reads at most {most} skipped frames in a row "
                         f"(its training's); use 0 to {most}")


def _diffusion(cfg: AgentConfig) -> tuple[str, DiffusionCheckpoint] | None:
    """The checkpoint ``--policy`` names (None without one), read and built with the
    ``--step-cache`` settings before Ray starts, and ``--policy`` with its path made absolute
    (run.json keeps that)."""
    if cfg.policy is None:
        return None
    from agent.policy.diffusion import DiffusionCheckpoint, DiffusionPolicy, PolicyFileError, SamplerConfig

    kind, text = policy_choice(cfg.policy)  # checked by _validate (or, resuming, with run.json)
    path = Path(text).expanduser()
    sampler = SamplerConfig(cache=cfg.step_cache, threshold=cfg.cache_threshold)
    try:
        ckpt = DiffusionCheckpoint.read(path)
        sampler.validate(ckpt.config.levels)
        DiffusionPolicy(ckpt, sampler)  # what only building it checks: SenCache needs the checkpoint's table
    except PolicyFileError as exc:
        raise UsageError(f"--policy: {exc}") from None
    except ValueError as exc:  # the sampler settings'
        raise UsageError(str(exc)) from None
    return f"{kind}:{path.resolve()}", ckpt


def _check_fit(env: Any, name: str, ckpt: DiffusionCheckpoint) -> None:
    """UsageError (one line) when ``env``'s state or action space is not the policy's."""
    from agent.policy.actor import misfit

    space = env.action_space
    discrete = hasattr(space, "n")
    why = misfit(ckpt.config, discrete, int(space.n) if discrete else math.prod(space.shape),
                 int(env.observation_space["state"].shape[0]))
    if why is not None:
        trained = ckpt.provenance.get("env_id")
        raise UsageError(f"--policy: {name} does not fit this diffusion policy: {why}"
                         + (f" (it was trained on {trained})" if trained else ""))


def _plain(value: Any) -> Any:
    """``value`` with every NaN float (e.g. the mean return of a run with no finished episode) as None,
    so the summary is plain JSON for run.json and ``--json``."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return None if isinstance(value, float) and math.isnan(value) else value


def _task_sequence(name: str, steps: int | None) -> TaskSequence:
    """The sequence ``--tasks`` names, with its step budget checked."""
    from envs.tasks import task_sequence

    try:
        seq = task_sequence(name)
    except ValueError as exc:
        raise UsageError(f"--tasks: {exc}") from None
    if steps is not None and steps < seq.n_tasks:
        raise UsageError(f"--steps {steps} is less than one step for each of {seq.name}'s "
                         f"{seq.n_tasks} tasks; give at least --steps {seq.n_tasks}")
    return seq


def _probe(name: str, seq: TaskSequence | None, cfg: AgentConfig, policy: DiffusionCheckpoint | None) -> None:
    """Make, reset and close one env: unknown ids fail here, before Ray starts, and so does a
    renderer that cannot start, an option the env does not take, or spaces ``policy`` does not act in."""
    import envs

    from envs.robot import RobotConfig

    options = cfg.env_options()
    robot = seq is None and is_robot(name)
    try:
        if robot and cfg.env_resources is not None:  # the robot's code may live on its own computer only
            RobotConfig.parse(options.robot_config)
            return
        probe = (envs.make(name, frame_size=cfg.frame_size, options=options) if seq is None
                 else seq.make(0, frame_size=cfg.frame_size, options=options))
    except ValueError as exc:
        if isinstance(exc, envs.EnvNotFoundError):
            raise
        raise UsageError(str(exc)) from None
    try:
        if policy is not None:
            _check_fit(probe, name, policy)
        if not robot:  # a robot is built and checked, but not connected: the env actor connects it where it runs
            probe.reset()
    finally:
        probe.close()


def _say(args: argparse.Namespace, text: str) -> None:
    """A line of what is happening, on stderr (so ``--json``'s stdout stays the summary alone)."""
    print(f"thalamus: {text}", file=sys.stderr, flush=True)


def _store_need(cfg: AgentConfig, steps: int | None) -> int:
    """Bytes the run's store will roughly need: frames compress to about a third on these envs."""
    return int((steps or 20_000) * (cfg.frame_size ** 2 * 3 // 3 + 64))


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM stops a run as Ctrl-C does: what was seen is committed, robots are disconnected."""
    raise KeyboardInterrupt


def main(args: argparse.Namespace) -> int:
    cfg = _validate(args)
    if args.resume is not None:
        return _resume(args, cfg)
    seq = _task_sequence(cfg.tasks, cfg.steps) if cfg.tasks is not None else None
    name = seq.name if seq is not None else cfg.env_id
    # --captioner auto over tasks: the captioner of the env the tasks vary, if any (none for digits)
    if seq is None and is_robot(name):  # one robot: one env
        if "num_envs" in _given(args) and cfg.num_envs != 1:
            raise UsageError(f"--num-envs {cfg.num_envs}: a robot env drives one robot; leave out --num-envs "
                             "(a robot run steps one env)")
        cfg = replace(cfg, num_envs=1)
    diffusion = _diffusion(cfg)
    _probe(name, seq, cfg, diffusion[1] if diffusion else None)
    trained = diffusion[1].provenance.get("env_id") if diffusion else None
    if trained is not None and trained != name:
        _say(args, f"warning: the policy was trained on {trained}, and this run steps {name}")
    captioner = _captioner(cfg.captioner, name if seq is None else seq.base_env or seq.name)
    _check_caption_skip(cfg.caption_skip, captioner)
    sequence: dict[str, Any] = {}
    steps = cfg.steps
    if seq is not None:  # every task gets the same whole number of batched steps
        per_task = args.steps_per_task or math.ceil(cfg.steps / seq.n_tasks)
        per_task = math.ceil(per_task / cfg.num_envs) * cfg.num_envs
        steps = per_task * seq.n_tasks
        sequence = {"sequence": seq.name, "task_names": list(seq.names), "steps_per_task": per_task}
    elif steps is not None:
        steps = math.ceil(steps / cfg.num_envs) * cfg.num_envs
    asked = args.steps_per_task * seq.n_tasks if seq and args.steps_per_task else cfg.steps
    cfg = replace(cfg, env_id=name, steps=steps, captioner=captioner or "off",
                  policy=diffusion[0] if diffusion else None)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_dir = (args.run_dir or Path("runs") / f"{name}-{stamp}").resolve()
    _connect(args, cfg)  # before the run dir exists: a cluster that cannot be joined leaves nothing behind
    if steps is not None and steps != asked:
        _say(args, f"budget rounded up to {steps:,} steps (whole batches of {cfg.num_envs} envs"
                   + (f", {sequence['steps_per_task']:,} per task)" if seq else ")"))
    run_dir.mkdir(parents=True, exist_ok=True)
    from memory import write_manifest

    write_manifest(run_dir, {"name": run_dir.name, "command": sys.argv, "config": cfg.to_dict(), **sequence,
                             "caption_vocab": _caption_vocab(captioner),
                             "versions": _versions(), "git_commit": _git_commit(),
                             "started": _now(), "ended": None, "status": "starting"})
    _check_space(args, run_dir, _store_need(cfg, steps))
    return _drive(args, cfg, run_dir, None, None)


def _connect(args: argparse.Namespace, cfg: AgentConfig) -> None:
    """Join (or start) the cluster, and check it can place the env actor."""
    from launch import ray_session

    if args.address is None:
        _say(args, "starting a local Ray cluster (takes a while on a small machine) ...")
    args.own_ray = ray_session.connect(args.address)
    signal.signal(signal.SIGTERM, _terminate)  # after Ray's driver start-up, which installs a handler of its own
    _check_placement(cfg)
    if args.address is not None:
        _say(args, f"joined the Ray cluster at {args.address}")


def _check_placement(cfg: AgentConfig) -> None:
    """--env-resources names resources some node of the cluster advertises (else the env actor would
    wait for one forever)."""
    import ray

    wanted = env_resources(cfg.env_resources)
    have = ray.cluster_resources()
    for name, amount in wanted.items():
        if have.get(name, 0.0) < amount:
            raise UsageError(f"--env-resources {name}={amount:g}: no node of the cluster advertises it; on the "
                             f"robot's computer join with `ray start --address HEAD:PORT --resources "
                             f"'{{\"{name}\": {amount:g}}}'`")


def _check_space(args: argparse.Namespace, run_dir: Path, need: int) -> None:
    """Warn at start when the run dir's disk has less free space than the store will roughly need."""
    free = shutil.disk_usage(run_dir).free
    if free < need:
        _say(args, f"warning: {free / 2**20:,.0f} MiB free on the disk of {run_dir}, and this run's store needs "
                   f"about {need / 2**20:,.0f} MiB; it will stop cleanly when the disk fills")


def _resume(args: argparse.Namespace, flags: AgentConfig) -> int:
    """``--resume RUN_DIR``: the run's config from run.json, where its store stopped, and go on."""
    from memory import StoreBusy, StoreError, read_manifest, update_manifest

    run_dir = args.resume.resolve()
    try:
        manifest = read_manifest(run_dir)
    except StoreError as exc:
        raise UsageError(f"--resume: {exc}") from None
    try:
        cfg = AgentConfig.from_dict(manifest.get("config") or {})
        policy = policy_choice(cfg.policy)[1] if cfg.policy is not None else None
        started = dt.datetime.fromisoformat(manifest["started"]).timestamp()
    except (ValueError, TypeError, KeyError) as exc:
        raise UsageError(f"--resume: {run_dir / 'run.json'} holds no config this version can run: {exc}") from None
    given = _given(args)
    from envs.tasks import task_sequence

    try:
        seq = task_sequence(cfg.tasks) if cfg.tasks else None
    except ValueError as exc:
        raise UsageError(f"--resume: {run_dir / 'run.json'} names a task sequence this version lacks: {exc}") from None
    per_task = manifest.get("steps_per_task") if seq is not None else None
    if seq is not None and "steps" in given:
        raise UsageError(f"--steps: a task sequence's budget is fixed ({per_task} steps per task); "
                         f"resume it without --steps")
    if "steps" in given:  # a new total budget, in steps
        cfg = replace(cfg, steps=math.ceil(flags.steps / cfg.num_envs) * cfg.num_envs, episodes=None)
    cfg = replace(cfg, **{name: getattr(flags, name) for name in given if name in ("device", "checkpoint_every_s",
                                                                                   "hop_timeout_s")})
    cfg = replace(cfg, view=flags.view, view_fps=flags.view_fps)  # this sitting's viewer, not the first one's
    _check_view(cfg)
    captioner = cfg.captioner if cfg.captioner not in (None, "auto", "off") else None
    if captioner is not None and not Path(captioner).is_file():
        raise UsageError(f"--resume: the run's captioner checkpoint {captioner} is gone; put it back "
                         "to go on with this run")
    from agent.checkpoints import resume_point

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
    if captioner is not None:
        _captioner(captioner, cfg.env_id)  # checks it is still a captioner checkpoint
    if policy is not None and not Path(policy).is_file():
        raise UsageError(f"--resume: the run's policy checkpoint {policy} is gone; put it back to go on with this run")
    diffusion = _diffusion(cfg)
    _probe(cfg.env_id, seq, cfg, diffusion[1] if diffusion else None)
    from agent.checkpoints import CheckpointError, load_tensors

    try:  # before anything starts: a checkpoint that is not plain tensors is refused here, in one line
        state = load_tensors(point.checkpoint) if point.checkpoint is not None else None
    except CheckpointError as exc:
        raise UsageError(f"--resume: {exc}") from None
    _connect(args, cfg)
    resumes = manifest.get("resumes", []) + [{
        "at": _now(), "command": sys.argv, "from_steps": point.steps, "from_episodes": point.episodes,
        "task": point.task, "checkpoint": point.checkpoint.name if point.checkpoint else None}]
    update_manifest(run_dir, config=cfg.to_dict(), resumes=resumes, ended=None, status="starting")
    return _drive(args, cfg, run_dir, point, state)


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "No space left on device" in str(exc)


def _drive(args: argparse.Namespace, cfg: AgentConfig, run_dir: Path, resume: ResumePoint | None,
           state: dict[str, Any] | None) -> int:
    """:func:`_run_agent`, and stdout as it was after (it points stdout at stderr for ``--json``).

    A connection this command made is closed before stdout is given back: Ray's driver prints the
    cluster's notices (a worker that died) on stdout until it disconnects, and --json's is the summary."""
    stdout = sys.stdout
    try:
        return _run_agent(args, cfg, run_dir, resume, state)
    finally:
        if args.json and args.own_ray:
            import ray

            ray.shutdown()
        sys.stdout = stdout


def _run_agent(args: argparse.Namespace, cfg: AgentConfig, run_dir: Path, resume: ResumePoint | None,
               state: dict[str, Any] | None) -> int:
    """Start the actors, run with a live display, record how it ended in run.json, print the summary."""
    from agent.channels import ChannelTimeout
    from agent.recovery import ActorFailed
    from agent.runtime import Agent
    from launch.display import RunDisplay, stdout_console, summary_table
    from memory import open_store, update_manifest

    summary_out = sys.stdout
    if args.json:  # Ray's driver prints cluster notices (e.g. a worker that died) on stdout, at any time
        sys.stdout = sys.stderr  # until the command ends: --json's stdout is the summary alone
    extra = [name for name, on in (("captioner", cfg.captioner != "off"), ("viewer", cfg.view is not None)) if on]
    _say(args, f"starting the actors ({', '.join(['env', 'perception', 'policy', 'learner', 'recorder', *extra])}) ...")
    try:
        agent = Agent(cfg, run_dir, use_ray=True, resume=resume, state=state)
    except BaseException as exc:
        update_manifest(run_dir, ended=_now(), status="failed to start", error=f"{type(exc).__name__}: {exc}")
        raise
    update_manifest(run_dir, status="running")
    if agent.view_url is not None:
        _say(args, f"the web viewer: {agent.view_url} (episodes show as they end)")
    total, unit = (cfg.steps, "steps") if cfg.steps is not None else (cfg.episodes, "episodes")
    try:
        with RunDisplay(total, unit, enabled=not args.json, start_steps=resume.steps if resume else 0) as display:
            summary = agent.run(on_progress=display.update)
            display.update({"steps": summary["steps"], "episodes": summary["episodes"],
                            "elapsed_s": summary["elapsed_s"], "mean_return_last20": summary["mean_return_last20"]})
    except BaseException as exc:
        agent.shutdown()  # the actors go with the run (on a cluster that outlives this command, too)
        if _disk_full(exc):
            committed = open_store(run_dir).n_episodes
            update_manifest(run_dir, ended=_now(), status="failed", error="disk full")
            free = shutil.disk_usage(run_dir).free
            raise UsageError(f"the disk of {run_dir} is full ({free / 2**20:,.1f} MiB free): the run stopped with "
                             f"{committed:,} episodes committed; free some space, then go on with "
                             f"`thalamus run --resume {run_dir}`") from None
        update_manifest(run_dir, ended=_now(), status="failed", error=str(exc).splitlines()[0] if str(exc) else
                        type(exc).__name__)
        if isinstance(exc, (ActorFailed, ChannelTimeout)):
            raise ActorFailed(f"{exc}; the committed episodes are kept, go on with: "
                              f"thalamus run --resume {run_dir}") from None
        raise
    agent.shutdown()  # killed now, not left to exit on their own when this driver goes (seconds of CPU each)
    summary = _plain(summary)
    update_manifest(run_dir, ended=_now(), status="interrupted" if summary["interrupted"] else "completed",
                    summary=summary)
    if args.json:
        print(json.dumps(summary), file=summary_out, flush=True)
    else:
        stdout_console().print(summary_table(summary))
        if summary["interrupted"]:
            print(f"go on with: thalamus run --resume {run_dir}", flush=True)
        if cfg.view in ("native", "web"):
            print(f"see it again: thalamus view {run_dir}" + (" --web" if cfg.view == "web" else ""), flush=True)
    return 130 if summary["interrupted"] else 0
