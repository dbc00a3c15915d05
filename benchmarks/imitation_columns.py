"""Which of trc's columns plays each task best, and which signal on held-out windows says so: trc learns
an imitation sequence as `thalamus bench continual` does (same defaults), then each task is played
through every column in turn (the router replaced by a fixed choice), through its own column and the
newest one mixed with equal weights (their noise predictions averaged), and through the learned router.

    python benchmarks/imitation_columns.py --data runs/mw-easy-50 --seed 0 --json out.jsonl
    python benchmarks/imitation_columns.py --benchmark cw10-imitation --data runs/cw10-30 --device cuda

For every (task, column) it records the success rate and four signals a learner could compute without
playing: the sampled chunk's error against the expert's on the task's held-out windows (what trc
chooses by), the same over the executed, clipped actions only, the denoising loss on those windows,
and the executed-action error on windows the column trained on. A rule for choosing columns can then
be scored offline against the column that actually plays best.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F
from torch.nn.functional import one_hot

from agent.policy.diffusion.continual import ImitationConfig, ImitationLearner, ddim
from agent.policy.diffusion.policy import DiffusionPolicy
from agent.policy.diffusion.rollout import make_envs, rollouts
from launch.bench.imitation import SEQUENCES, learn, load_tasks


@torch.no_grad()
def signals(learner: ImitationLearner, column: int, obs: torch.Tensor, act: torch.Tensor) -> dict[str, float]:
    """The column's chunk error, executed-action error and denoising loss on (obs, act)."""
    cfg, schedule, net = learner.cfg, learner.schedule, learner.columns[column]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(act.shape, generator=g).to(act.device)
    x = ddim(schedule, schedule.ddim_timesteps(cfg.ddim_steps), x, lambda x, t: net(x, t, obs))
    n = cfg.model.n_action
    noise = torch.randn(act.shape, generator=g).to(act.device)
    t = torch.arange(len(act), device=act.device) % cfg.model.levels  # every level, in turn
    pred = net(schedule.add_noise(act, noise, t), t, obs)
    return {"chunk": float((x - act).pow(2).mean()),
            "executed": float((x[:, :n].clamp(-1, 1) - act[:, :n]).pow(2).mean()),
            "denoise": float(F.mse_loss(pred, noise))}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", default="mw-easy-imitation", choices=sorted(SEQUENCES),
                   help="the sequence (default: %(default)s)")
    p.add_argument("--data", type=Path, required=True, help="the expert demonstrations (thalamus record --expert)")
    p.add_argument("--seed", type=int, default=0, help="trc's seed (default: %(default)s)")
    p.add_argument("--tasks", default="all", help="the tasks to play, comma-separated (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=20, help="held-out episodes a cell (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="where trc trains and samples (default: %(default)s)")
    p.add_argument("--json", type=Path, help="append the run's record (one line) to this file")
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = load_tasks(args.benchmark, [args.data])
    cfg = ImitationConfig(model=tasks.model)
    learner = ImitationLearner("trc", cfg, len(tasks.names), args.seed, args.device)
    started = time.perf_counter()
    for i, (obs, act, held) in enumerate(zip(tasks.obs, tasks.act, tasks.held)):
        learn(learner, i, *(torch.from_numpy(a).to(args.device) for a in (obs, act, held)))
    print(f"trained in {time.perf_counter() - started:.0f} s; task → column {learner.owners}, "
          f"column → the column that plays its task {learner.plays}", flush=True)
    router, plays, n = learner.router, learner.plays, len(learner.columns)
    results: dict[str, dict[str, float]] = {}
    measured: dict[str, dict[str, dict[str, float]]] = {}
    names = tasks.names if args.tasks == "all" else args.tasks.split(",")
    for name in names:
        j = tasks.names.index(name)
        held = torch.from_numpy(tasks.held[j])
        obs, act = (torch.from_numpy(a).to(args.device) for a in (tasks.obs[j], tasks.act[j]))
        trained = (~held).nonzero().flatten()[torch.randperm(int((~held).sum()), generator=torch.Generator().manual_seed(j))[:256]]
        owner = learner.owners[j]
        measured[name] = {}
        for m in range(n):
            s = signals(learner, m, obs[held.to(obs.device)], act[held.to(obs.device)])
            s["trained"] = signals(learner, m, obs[trained.to(obs.device)], act[trained.to(obs.device)])["executed"]
            measured[name][f"column {m}"] = s
        envs = make_envs(tasks.env_ids[j], args.episodes)

        def to_owner(obs: torch.Tensor, owner: int = owner) -> torch.Tensor:  # the router, fixed on the task's owner
            return 100.0 * one_hot(torch.full((len(obs),), owner, device=obs.device), n).float()

        def to_both(obs: torch.Tensor, owner: int = owner) -> torch.Tensor:  # the owner and the newest column, equal weights
            return 100.0 * (one_hot(torch.full((len(obs),), owner, device=obs.device), n)
                            + one_hot(torch.full((len(obs),), learner.last, device=obs.device), n)).float()

        mixed = [(f"columns {owner}+{learner.last}", to_both, {})] if owner != learner.last else []
        choices = [(f"column {m}", to_owner, {owner: m}) for m in range(n)] + mixed + [("routed", router, plays)]
        for label, choose, playing in choices:
            learner.router, learner.plays = choose, playing
            policy = DiffusionPolicy.from_sampler(cfg.model, tasks.normalizer, learner.sampler(), args.device)
            success = float(np.mean([o.success for o in rollouts(policy, tasks.env_ids[j], args.episodes, seed=0,
                                                                 envs=envs)]))
            results.setdefault(name, {})[label] = success
            signal = measured[name].get(label, {})
            print(f"{name} through {label}: {success:.0%} "
                  f"{ {k: round(v, 4) for k, v in signal.items()} }", flush=True)
        for env in envs:
            env.close()
    learner.router, learner.plays = router, plays
    record = {"benchmark": args.benchmark, "seed": args.seed, "episodes": args.episodes, "owners": learner.owners,
              "plays": plays, "success": results, "signals": measured}
    print(json.dumps(record))
    if args.json:
        with args.json.open("a") as f:
            f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()
