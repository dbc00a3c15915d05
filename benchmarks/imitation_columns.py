"""Which of trc's columns plays each task best: trc learns the mw-easy-imitation sequence as `thalamus
bench continual` does (same defaults), then each task is played through every column in turn (the
router replaced by a fixed choice) and through the learned router.

    python benchmarks/imitation_columns.py --data runs/mw-easy-50 --seed 0 --tasks reach-v3,door-lock-v3

It asks whether a later column (trained from a copy of the earlier ones, then on a later skill) plays an
earlier skill better than the column that learned it: the routing that "which column explains it
best" would give, against the owner routing trc learns.
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
    for name in args.tasks.split(","):
        j = tasks.names.index(name)
        envs = make_envs(tasks.env_ids[j], min(10, args.episodes))
        choices = [(f"column {m}", lambda obs, m=m: 100.0 * one_hot(torch.full((len(obs),), m), n).float())
                   for m in range(n)] + [("routed", router)]
        for label, choose in choices:
            learner.router, learner.plays = choose, plays if label == "routed" else {}  # a column plays itself
            policy = DiffusionPolicy.from_sampler(cfg.model, tasks.normalizer, learner.sampler(), "cpu")
            success = float(np.mean([o.success for o in rollouts(policy, tasks.env_ids[j], args.episodes, seed=0,
                                                                 envs=envs)]))
            results.setdefault(name, {})[label] = success
            print(f"{name} through {label}: {success:.0%}", flush=True)
        for env in envs:
            env.close()
    learner.router, learner.plays = router, plays
    print(json.dumps({"seed": args.seed, "owners": learner.owners, "plays": plays, "success": results}))


if __name__ == "__main__":
    main()
