"""Where a reach fails: trc learns mw-easy's first tasks (reach, then button-press-topdown), then reach
is played through each column; for every failed episode it prints the closest the hand came to the
goal and where the hand and goal were at the last step, with the action taken there.

    python -P benchmarks/reach_stalls.py --seed 0 --tasks 2 --shift 0      # ~10 min on 2 cores

This is how the shifted teaching (`--shift`) was found: the button press's column, which imitates
reach's held-out chunks 27x closer than reach's own column, stops short of the goal with the hand
pushed down on the table, where no reach demonstration goes.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from torch.nn.functional import one_hot

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.policy.diffusion.continual import ImitationConfig, ImitationLearner  # noqa: E402
from agent.policy.diffusion.policy import DiffusionPolicy  # noqa: E402
from agent.policy.diffusion.rollout import make_envs  # noqa: E402
from envs.seeds import eval_seed  # noqa: E402
from launch.bench.imitation import learn, load_tasks  # noqa: E402

HAND, GOAL = slice(0, 3), slice(36, 39)  # Meta-World v3 state: the hand's position, the goal's


def play(learner: ImitationLearner, tasks, column: int, episodes: int, envs: list) -> list[dict]:
    """Reach's episodes through one column: success, closest distance, last hand, goal and action."""
    n = len(learner.columns)
    learner.router = lambda obs: 100.0 * one_hot(torch.full((len(obs),), 0, device=obs.device), n).float()
    learner.plays = {0: column}
    policy = DiffusionPolicy.from_sampler(learner.cfg.model, tasks.normalizer, learner.sampler(), "cpu")
    out: list[dict] = []
    for first in range(0, episodes, len(envs)):
        m = min(len(envs), episodes - first)
        policy.reset(m)
        states = np.zeros((m, learner.cfg.model.obs_dim), np.float32)
        for j in range(m):
            states[j] = envs[j].reset(seed=eval_seed(0, first + j))[0]["state"]
            policy.reset_env(j, first + j)
        alive, rec = np.ones(m, bool), [dict(success=False, closest=np.inf) for _ in range(m)]
        while alive.any():
            actions = policy.act(states, alive)
            for j in np.flatnonzero(alive):
                obs, _, terminated, truncated, info = envs[j].step(actions[j])
                states[j] = obs["state"]
                rec[j]["success"] |= bool(info.get("success"))
                rec[j]["closest"] = min(rec[j]["closest"], float(info["obj_to_target"]))
                rec[j] |= {"hand": states[j, HAND].round(3), "goal": states[j, GOAL].round(3), "action": actions[j].round(2)}
                alive[j] = not (terminated or truncated)
        out += rec
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("runs/mw-easy-50"), help="mw-easy demonstrations (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="trc's seed (default: %(default)s)")
    p.add_argument("--tasks", type=int, default=2, help="mw-easy tasks learned before playing reach (default: %(default)s)")
    p.add_argument("--shift", type=float, default=ImitationConfig.shift, help="trc's --shift (default: %(default)s)")
    p.add_argument("--episodes", type=int, default=20, help="reach episodes a column (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = load_tasks("mw-easy-imitation", [args.data])
    learner = ImitationLearner("trc", ImitationConfig(model=tasks.model, shift=args.shift), len(tasks.names), args.seed)
    for i in range(args.tasks):
        learn(learner, i, *(torch.from_numpy(a) for a in (tasks.obs[i], tasks.act[i], tasks.held[i])))
        print(f"learned {tasks.names[i]}", flush=True)
    envs = make_envs(tasks.env_ids[0], min(10, args.episodes))
    for column in range(args.tasks):
        episodes = play(learner, tasks, column, args.episodes, envs)
        print(f"reach through column {column} ({tasks.names[column]}'s): "
              f"{np.mean([e['success'] for e in episodes]):.0%} success")
        for e in (e for e in episodes if not e["success"]):
            print(f"  failed: closest {e['closest']:.3f} m; at the end hand {e['hand']} goal {e['goal']} action {e['action']}")
    for env in envs:
        env.close()


if __name__ == "__main__":
    main()
