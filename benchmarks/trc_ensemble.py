"""trc on a robot-arm sequence acting with each task's player alone, against the mean noise prediction
of the task's last N players (the newest column and the ones that played it before: a snapshot
ensemble), on the same trained learner and the same held-out episodes.

    python -P benchmarks/trc_ensemble.py --benchmark cw10-imitation --data runs/cw10-30 --seed 0 --json out.json

Trains trc through the sequence as `thalamus bench continual` does (no plays in between), then plays
every task at the end once per ``--ensembles`` value (1: trc as it acts today). The same training and
the same episode seeds for every value, so the difference is the acting rule's, not a seed's.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.learner.columns import select  # noqa: E402
from agent.policy.diffusion.continual import DDIMSampler, ImitationConfig, ImitationLearner  # noqa: E402
from agent.policy.diffusion.policy import DiffusionPolicy  # noqa: E402
from agent.policy.diffusion.rollout import make_envs, rollouts  # noqa: E402
from envs.seeds import eval_seed  # noqa: E402
from launch.bench.imitation import learn, load_tasks  # noqa: E402


class Ensemble:
    """Acts as ``learner`` does, but an owner's routing weight is shared equally by the last ``size``
    columns that played its task (its player now and those before it)."""

    def __init__(self, learner: ImitationLearner, size: int) -> None:
        self.learner, self.cfg, self.schedule = learner, learner.cfg, learner.schedule
        n = len(learner.columns)
        self.share = torch.zeros(n, n, device=learner.device)  # [owner column, playing column]
        for task, owner in learner.owners.items():
            history = [owner] + [learner.owners[c["after"]] for c in learner.choices if c["task"] == task and c["moved"]]
            last = history[-size:]
            self.share[owner, last] = 1.0 / len(last)
        self.used = torch.zeros(n, dtype=torch.bool, device=learner.device)
        self.used[list(learner.owners.values())] = True

    @torch.no_grad()
    def denoise(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = self.cfg
        weights = select(self.learner.router(obs), self.used, cfg.top_k, cfg.top_p) @ self.share
        return self.learner.mix(weights, x, t, obs), weights


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benchmark", default="cw10-imitation", choices=["cw10-imitation", "mw-easy-imitation"])
    p.add_argument("--data", type=Path, nargs="+", required=True, help="the demonstration stores")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=ImitationConfig.steps, help="optimizer steps a task (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=10, help="held-out episodes a task (default: %(default)s)")
    p.add_argument("--ensembles", type=int, nargs="+", default=[1, 2], help="players averaged (default: %(default)s)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = load_tasks(args.benchmark, args.data)
    cfg = ImitationConfig(steps=args.steps, model=tasks.model)
    learner = ImitationLearner("trc", cfg, len(tasks.names), args.seed)
    started = time.perf_counter()
    for i, (obs, act, held) in enumerate(zip(tasks.obs, tasks.act, tasks.held)):
        learn(learner, i, torch.from_numpy(obs), torch.from_numpy(act), torch.from_numpy(held))
        print(f"learned {tasks.names[i]} ({time.perf_counter() - started:.0f} s)", flush=True)
    results = {}
    for size in args.ensembles:
        sampler = DDIMSampler(Ensemble(learner, size), cfg.ddim_steps)  # type: ignore[arg-type]
        policy = DiffusionPolicy.from_sampler(cfg.model, tasks.normalizer, sampler, "cpu")
        success = {}
        for name, env_id in zip(tasks.names, tasks.env_ids):
            envs = make_envs(env_id, min(10, args.episodes))
            try:
                outcomes = rollouts(policy, env_id, args.episodes, seed=0, envs=envs, seeds=eval_seed)
            finally:
                for env in envs:
                    env.close()
            success[name] = float(np.mean([o.success for o in outcomes]))
        results[size] = {"success": success, "average": float(np.mean(list(success.values()))),
                         "columns_per_window": sampler.routed / max(1, sampler.windows)}
        print(f"players averaged {size}: average {results[size]['average']:.1%} "
              f"({results[size]['columns_per_window']:.2f} columns a window); "
              + ", ".join(f"{n} {s:.0%}" for n, s in success.items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"benchmark": args.benchmark, "seed": args.seed, "steps": args.steps,
                                         "episodes": args.episodes, "config": replace(cfg, model=None).__dict__,
                                         "choices": learner.choices, "results": results}, indent=1, default=str))


if __name__ == "__main__":
    main()
