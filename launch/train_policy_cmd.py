"""`thalamus train policy`: train a diffusion policy on demonstrations and write its checkpoint.

    thalamus record --expert --env Meta-World/reach-v3 --episodes 50 --run-dir demos/reach
    thalamus train policy --data demos/reach --out reach.pt                     # CPU, ~10 min
    thalamus train policy --data demos/mw-easy --task door-lock-v3 --device cuda --out door-lock.pt
    thalamus eval --policy diffusion:reach.pt --env Meta-World/reach-v3 --step-cache sencache

Data: run stores (`thalamus record --expert` writes them; a `thalamus run` store works too), one task
at a time (`--task NAME` when the stores hold several). Windows are Diffusion Policy's: the last 2
states → the next 16 actions; 100 DDPM noise levels; the EMA of the weights is saved. A share of the
episodes (`--held-out`) is never trained on and scores the model; at the end `--eval-episodes`
rollouts with DDIM 16 give a success rate (on `thalamus eval`'s seeds). The checkpoint records the
stores, the episodes of each split, every setting, the scores, and what the step caches need:
SeaCache's spectrum slope and SenCache's sensitivity table (agent/policy/diffusion/).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from launch.errors import UsageError

# PolicyTrainConfig's defaults (agent/policy/diffusion/config.py); a test keeps the two the same
DEFAULTS = {"steps": 4000, "batch": 256, "lr": 1e-3, "held_out": 0.1, "eval_episodes": 10, "seed": 0}


def add_parser(tsub: argparse._SubParsersAction) -> None:
    p = tsub.add_parser("policy", help="train a diffusion policy on demonstrations", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, metavar="RUN_DIR[,RUN_DIR...]",
                   help="run stores to learn from (`thalamus record --expert` makes them)")
    p.add_argument("--task", metavar="NAME", help="the task to learn when the stores hold several (e.g. reach-v3)")
    p.add_argument("--out", type=Path, default=Path("policy.pt"), metavar="PATH",
                   help="checkpoint to write (default: %(default)s)")
    p.add_argument("--steps", type=int, default=DEFAULTS["steps"], metavar="N", help="optimizer steps (default: %(default)s)")
    p.add_argument("--batch", type=int, default=DEFAULTS["batch"], metavar="N", help="windows per step (default: %(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULTS["lr"], help="peak learning rate (default: %(default)s)")
    p.add_argument("--held-out", type=float, default=DEFAULTS["held_out"], metavar="FRACTION",
                   help="share of episodes kept out of training, to score on (default: %(default)s)")
    p.add_argument("--eval-episodes", type=int, default=DEFAULTS["eval_episodes"], metavar="N",
                   help="rollouts at the end for a success rate; 0: none (default: %(default)s)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where it trains (default: %(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS["seed"], help="weights, split and batches (default: %(default)s)")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    data = [Path(d) for d in args.data.split(",") if d]
    missing = [str(d) for d in data if not d.is_dir()]
    if not data or missing:
        raise UsageError(f"--data {args.data}: no such run directory {', '.join(missing) or ''}".rstrip() +
                         "; record one with `thalamus record --expert --env Meta-World/TASK`")
    if args.out.is_dir():
        raise UsageError(f"--out {args.out} is a directory; give the checkpoint's file name")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.policy.diffusion.config import PolicyTrainConfig
    from agent.policy.diffusion.data import DemoDataError
    from agent.policy.diffusion.train import train_policy
    from launch.display import stdout_console

    cfg = PolicyTrainConfig(steps=args.steps, batch=args.batch, lr=args.lr, held_out=args.held_out, seed=args.seed,
                            device=args.device, eval_episodes=args.eval_episodes, task=args.task)
    try:
        cfg.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, disable=args.json, transient=False) as bar:
        tasks: dict[str, int] = {}

        def report(phase: str, done: int, total: int, m: dict) -> None:
            if phase not in tasks:
                tasks[phase] = bar.add_task(f"train policy: {phase}", total=total, info="")
            bar.update(tasks[phase], completed=done, info=f"loss {m['loss']:.4f}" if "loss" in m else "")

        try:
            metrics = train_policy(cfg, data, args.out, progress=report, command=["thalamus", *sys.argv[1:]])
        except DemoDataError as exc:
            raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(metrics))
        return 0
    success = (f"; DDIM-16 rollouts: {metrics['rollout_success']:.0%} success over {metrics['rollout_episodes']} episodes"
               if "rollout_success" in metrics else "")
    held = (f"; held-out noise loss {metrics['heldout_loss']:.4f}, action error (MSE) {metrics['heldout_action_mse']:.4f}"
            if "heldout_loss" in metrics else "")
    stdout_console().print(
        f"wrote {args.out}: {metrics['task']}, {metrics['train_episodes']} training episodes "
        f"({metrics['train_windows']:,} windows), {cfg.steps} steps in {metrics['train_s']:.0f} s on {metrics['device']}"
        f"{held}{success}", highlight=False, soft_wrap=True)
    return 0
