"""Which of trc's columns plays each task best: trc learns the mw-easy-imitation sequence as `thalamus
bench continual` does (same defaults), then each task is played through every column in turn (the
router replaced by a fixed choice) and through the learned router.

    python benchmarks/imitation_columns.py --data runs/mw-easy-50 --seed 0 --tasks reach-v3,door-lock-v3

It asks whether a later column (trained from a copy of the earlier ones, then on a later skill and
the stored windows of the earlier ones) plays an earlier skill better than the column that learned
it, and whether each column's action error on the task's held-out windows (what trc chooses by)
ranks the columns as their success does.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import one_hot

from agent.policy.diffusion.continual import ImitationConfig, ImitationLearner
from agent.policy.diffusion.policy import DiffusionPolicy
from agent.policy.diffusion.rollout import make_envs, rollouts
from launch.bench.imitation import learn, load_tasks


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, required=True, help="the expert demonstrations (thalamus record --expert)")
    p.add_argument("--seed", type=int, default=0, help="trc's seed (default: %(default)s)")
    p.add_argument("--tasks", default="reach-v3,door-lock-v3", help="the tasks to play (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=10, help="held-out episodes a cell (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = load_tasks("mw-easy-imitation", [args.data])
    cfg = ImitationConfig(model=tasks.model)
    learner = ImitationLearner("trc", cfg, len(tasks.names), args.seed)
    started = time.perf_counter()
    for i, (obs, act, held) in enumerate(zip(tasks.obs, tasks.act, tasks.held)):
        learn(learner, i, torch.from_numpy(obs), torch.from_numpy(act), torch.from_numpy(held))
    print(f"trained in {time.perf_counter() - started:.0f} s; task → column {learner.owners}, "
          f"column → the column that plays its task {learner.plays}", flush=True)
    router, plays, n = learner.router, learner.plays, len(learner.columns)
    results: dict[str, dict[str, float]] = {}
    errors: dict[str, dict[str, float]] = {}
    for name in args.tasks.split(","):
        j = tasks.names.index(name)
        held = torch.from_numpy(tasks.held[j])
        obs, act = torch.from_numpy(tasks.obs[j])[held], torch.from_numpy(tasks.act[j])[held]
        owner = learner.owners[j]
        errors[name] = {f"column {m}": learner.action_error(m, obs, act) for m in range(n)}
        print(f"{name}: action error on its {len(obs)} held-out windows by column "
              f"{ {k: round(v, 4) for k, v in errors[name].items()} }", flush=True)
        envs = make_envs(tasks.env_ids[j], min(10, args.episodes))

        def to_owner(obs: torch.Tensor, owner: int = owner) -> torch.Tensor:  # the router, fixed on the task's owner
            return 100.0 * one_hot(torch.full((len(obs),), owner), n).float()

        choices = [(f"column {m}", to_owner, {owner: m}) for m in range(n)] + [("routed", router, plays)]
        for label, choose, playing in choices:
            learner.router, learner.plays = choose, playing
            policy = DiffusionPolicy.from_sampler(cfg.model, tasks.normalizer, learner.sampler(), "cpu")
            success = float(np.mean([o.success for o in rollouts(policy, tasks.env_ids[j], args.episodes, seed=0,
                                                                 envs=envs)]))
            results.setdefault(name, {})[label] = success
            print(f"{name} through {label}: {success:.0%}", flush=True)
        for env in envs:
            env.close()
    learner.router, learner.plays = router, plays
    print(json.dumps({"seed": args.seed, "owners": learner.owners, "plays": plays, "success": results,
                      "held_out_action_error": errors}))


if __name__ == "__main__":
    main()
