"""`thalamus eval`: a policy on fresh episodes, its mean return and success rate with 95% intervals.

    thalamus eval runs/CartPole-v1-20261201-101500                       # the run's final.pt on its env
    thalamus eval runs/mw-easy-20261201-101500 --checkpoint task_2 --episodes 50 --json
    thalamus eval --policy ppo:runs/CartPole-v1-20261201-101500/checkpoints/final.pt --tasks cartpole-physics
    thalamus eval --expert --env Meta-World/reach-v3 --episodes 10     # Meta-World's scripted expert
    thalamus eval --policy diffusion:agent/policy/checkpoints/mw-easy/reach-v3.pt --step-cache seacache --json

RUN_DIR's policy (perception + PPO of `--checkpoint`, default final) plays its run's env, or every
task of its run's sequence, with the run's frame size, camera and captioner; `--env`/`--tasks` put
it on another env with the same spaces. `--policy KIND:PATH` loads a policy file (`ppo`: a
checkpoint in a run's checkpoints/, read with that run's run.json); `--expert` plays Meta-World's
scripted expert. `--policy diffusion:PATH` plays a diffusion policy (`thalamus train policy`; default
env: the one it was trained on) with `--ddim-steps` and `--step-cache`; its report adds denoiser
evaluations and ms per action chunk (`--json`: `nfe_per_chunk`, `ms_per_chunk_p50`, `ms_per_chunk_p99`).
Episode i of every task starts from env seed `envs.seeds.eval_seed(SEED, i)`, a
range no run trains on; the policy acts deterministically and learns nothing (agent/evaluation.py).
Episodes run here, one env at a time, with a progress bar on stderr.

The report gives per task the mean return with a t interval and, for envs that report success
(Meta-World's), the success rate (an episode succeeded if `info["success"]` was true at any step)
with a Wilson interval; `--json` prints one object instead: `episodes`, `mean_return`,
`return_ci95`, `success_rate`, `success_ci95` (null where there is no success), `returns`,
`lengths`, `successes` and, for a sequence, `per_task` (task name → the same keys).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from launch.errors import UsageError

if TYPE_CHECKING:
    from agent.evaluation import EvalConfig, EvalReport, EvalTask, LoadedPolicy, Policy
    from agent.policy.diffusion.sampler import SamplerConfig


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Add the `eval` command to the `thalamus` parser."""
    p = sub.add_parser("eval", help="a policy on fresh episodes: mean return and success rate, with 95%% intervals",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, nargs="?", metavar="RUN_DIR", help="a run made with `thalamus run`")
    p.add_argument("--checkpoint", metavar="final|task_<i>|PATH",
                   help="which of RUN_DIR's checkpoints (default: final)")
    p.add_argument("--policy", metavar="KIND:PATH",
                   help="a policy file instead of a run: ppo:RUN_DIR/checkpoints/NAME.pt, or diffusion:PATH "
                        "(`thalamus train policy`)")
    p.add_argument("--expert", action="store_true", help="Meta-World's scripted expert instead of a learned policy")
    p.add_argument("--env", metavar="ID", help="the env to evaluate on (default: the run's)")
    p.add_argument("--tasks", metavar="NAME", help="a task sequence to evaluate on, every task (default: the run's)")
    p.add_argument("--episodes", type=int, default=20, metavar="N", help="episodes per task")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="episode i starts from env seed eval_seed(S, i)")
    p.add_argument("--frame-size", type=int, metavar="PX",
                   help="side of the camera frame (default: the policy's run's; 64 for --expert)")
    p.add_argument("--ddim-steps", type=int, default=16, metavar="N",
                   help="a diffusion policy's DDIM steps per action chunk (default: %(default)s)")
    p.add_argument("--step-cache", choices=["none", "seacache", "sencache"], default="none",
                   help="a diffusion policy's step cache (default: %(default)s)")
    p.add_argument("--cache-threshold", type=float, metavar="X",
                   help="SeaCache's δ or SenCache's ε (default: 0.5 and 0.3)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object on stdout")
    p.set_defaults(func=main)


def _check(args: argparse.Namespace) -> EvalConfig:
    """The episodes to play, once every check that needs no model loaded passes: conflicting or
    missing options, bad numbers, a missing run or checkpoint, an unknown policy kind."""
    from agent.evaluation import POLICY_LOADERS, EvalConfig, run_checkpoint

    given = [name for name, on in (("RUN_DIR", args.run_dir is not None), ("--policy", args.policy is not None),
                                   ("--expert", args.expert)) if on]
    if not given:
        raise UsageError("what to evaluate? give RUN_DIR, --policy KIND:PATH or --expert")
    if len(given) > 1:
        raise UsageError(f"{' and '.join(given)} are two policies: give one of RUN_DIR, --policy or --expert")
    if args.checkpoint is not None and args.run_dir is None:
        raise UsageError("--checkpoint picks one of RUN_DIR's checkpoints; with --policy give the file itself")
    if args.env is not None and args.tasks is not None:
        raise UsageError("give --env ID or --tasks NAME, not both")
    diffusion = args.policy is not None and args.policy.startswith("diffusion:")
    if args.run_dir is None and args.env is None and args.tasks is None and not diffusion:
        raise UsageError(f"{given[0]} needs something to play: add --env ID or --tasks NAME")
    if args.frame_size is not None and args.frame_size < 1:
        raise UsageError(f"--frame-size must be a positive number of pixels, got {args.frame_size}")
    if args.policy is not None:
        kind, colon, path = args.policy.partition(":")
        if not colon or not path:
            raise UsageError(f"--policy takes KIND:PATH (e.g. ppo:runs/RUN/checkpoints/final.pt), got {args.policy!r}")
        if kind not in POLICY_LOADERS:
            raise UsageError(f"--policy {args.policy}: unknown kind {kind!r}; known kinds: {', '.join(POLICY_LOADERS)}")
    if not diffusion and (args.step_cache != "none" or args.cache_threshold is not None or args.ddim_steps != 16):
        raise UsageError("--ddim-steps, --step-cache and --cache-threshold are for a diffusion policy "
                         "(--policy diffusion:PATH)")
    if diffusion:
        from agent.policy.diffusion.config import DiffusionConfig

        try:
            _sampler(args).validate(DiffusionConfig().levels)  # (a checkpoint's own levels are checked on load)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    cfg = EvalConfig(episodes=args.episodes, seed=args.seed)
    cfg.validate()
    if args.run_dir is not None:
        run_checkpoint(args.run_dir, args.checkpoint or "final")
    return cfg


def _sampler(args: argparse.Namespace) -> SamplerConfig:
    from agent.policy.diffusion.sampler import SamplerConfig

    return SamplerConfig(steps=args.ddim_steps, cache=args.step_cache, threshold=args.cache_threshold)


def _tasks(args: argparse.Namespace, loaded: LoadedPolicy | None) -> list[EvalTask]:
    """The envs to play: --env/--tasks, else the policy's run's; frames of --frame-size, else the
    policy's; the policy's env options (a Meta-World camera) where the envs are Meta-World's."""
    from agent.evaluation import eval_tasks
    from envs.metaworld import is_metaworld
    from envs.options import EnvOptions
    from envs.tasks import METAWORLD_SEQUENCES

    env_id, sequence = args.env, args.tasks
    if loaded is not None and env_id is None and sequence is None:
        env_id, sequence = loaded.env_id, loaded.sequence
    metaworld = (env_id is not None and is_metaworld(env_id)) or sequence in METAWORLD_SEQUENCES
    options = loaded.options if loaded is not None and metaworld else EnvOptions()
    frame_size = args.frame_size or (loaded.frame_size if loaded is not None else 64)
    return eval_tasks(env_id=env_id, sequence=sequence, frame_size=frame_size, options=options)


def main(args: argparse.Namespace) -> int:
    """Check the input, load the policy, play the episodes, print the report."""
    from agent.evaluation import POLICY_LOADERS, EvaluationError, ExpertPolicy, check_expert, load_run

    try:
        cfg = _check(args)
        if args.expert:
            tasks = _tasks(args, None)
            check_expert(tasks)
            policy: Policy = ExpertPolicy()
            source = "Meta-World's scripted expert"
        else:
            if args.policy is not None:
                kind, _, path = args.policy.partition(":")
                loaded = (POLICY_LOADERS[kind](Path(path), _sampler(args)) if kind == "diffusion"
                          else POLICY_LOADERS[kind](Path(path)))
            else:
                loaded = load_run(args.run_dir, args.checkpoint or "final")
            import torch  # (loaded by now)

            torch.set_num_threads(1)  # one observation at a time: threads only wait on each other (17 → 1 ms a frame)
            tasks = _tasks(args, loaded)
            policy, source = loaded.policy, loaded.source
        report = _play(policy, tasks, cfg)
    except EvaluationError as exc:
        raise UsageError(str(exc)) from None
    sequence = tasks[0].sequence
    env = None if sequence is not None else tasks[0].name
    chunks = policy.chunk_report() if hasattr(policy, "chunk_report") else {}
    if args.json:
        print(json.dumps({"policy": source, "env": env, "sequence": sequence, "seed": cfg.seed, **report.to_dict(),
                          **chunks}))
    else:
        _print(report, source, sequence or env)
        if chunks:
            from launch.display import stdout_console

            stdout_console().print(f"{chunks['sampler']}: {chunks['nfe_per_chunk']:.2f} denoiser evaluations per "
                                   f"action chunk, {chunks['ms_per_chunk_p50']:.1f} ms per chunk (p50), "
                                   f"{chunks['ms_per_chunk_p99']:.1f} ms (p99) over {chunks['chunks']} chunks",
                                   highlight=False)
    return 0


def _play(policy: Policy, tasks: list[EvalTask], cfg: EvalConfig) -> EvalReport:
    """`evaluate` with a progress bar on stderr (left out when stderr is not a terminal)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.evaluation import Episode, evaluate

    console = Console(stderr=True)
    progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TextColumn("episodes"), TextColumn("{task.fields[last]}"), TimeElapsedColumn(),
                        console=console, transient=True, disable=not console.is_terminal)
    bar = progress.add_task("eval", total=cfg.episodes * len(tasks), last="")

    def done(episode: Episode) -> None:
        success = "" if episode.success is None else ("  success" if episode.success else "  failure")
        progress.update(bar, advance=1, description=episode.task,
                        last=f"return {episode.ret:.1f} in {episode.length} steps{success}")

    with progress:
        return evaluate(policy, tasks, cfg, on_episode=done)


def _print(report: EvalReport, source: str, label: str) -> None:
    """The report as a table: one row per task (and all tasks pooled, for a sequence); success
    columns only for envs that report success."""
    from rich.table import Table

    from launch.display import stdout_console

    rows = list(report.per_task.items())
    if len(rows) > 1:
        rows.append(("all tasks", report.overall))
    success = report.overall.success_rate is not None
    table = Table("task", "episodes", "mean return", "95% interval",
                  *(("success rate", "95% interval") if success else ()))
    for name, result in rows:
        ci, rate, sci = result.return_ci95, result.success_rate, result.success_ci95
        cells = [name, str(len(result.episodes)), f"{result.mean_return:.1f}",
                 "n/a (1 episode)" if ci is None else f"[{ci[0]:.1f}, {ci[1]:.1f}]"]
        if success:
            cells += [f"{rate:.0%}", f"[{sci[0]:.0%}, {sci[1]:.0%}]"]
        table.add_row(*cells)
    console = stdout_console()
    console.print(f"thalamus eval — {source} on {label}", highlight=False, soft_wrap=True)
    console.print(table)
