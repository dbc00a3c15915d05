"""Episodes of a diffusion policy on several envs stepped in lockstep, chunks batched across them.

Episode i starts from env seed ``envs.seeds.eval_seed(seed, i)`` on envs made with seed
``eval_seed(seed, 0)``: the very episodes `thalamus eval` plays one at a time, so the two agree and
every sampler config of `thalamus bench policy` meets the same starts. Envs render nothing (the policy
reads the state). Used by `thalamus train policy`'s closing check and by `thalamus bench policy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np

from agent.policy.diffusion.policy import DiffusionPolicy
from envs import make
from envs.options import EnvOptions
from envs.seeds import eval_seed


@dataclass(frozen=True)
class Outcome:
    episode: int
    seed: int
    success: bool
    steps: int
    ret: float


def make_envs(env_id: str, n: int, seed: int = 0) -> list[gymnasium.Env]:
    """``n`` envs of ``env_id`` for :func:`rollouts` (a Meta-World env takes ~1.5 s to make: share them)."""
    return [make(env_id, frame_size=1, seed=eval_seed(seed, 0), options=EnvOptions(frames=False)) for _ in range(n)]


def rollouts(policy: DiffusionPolicy, env_id: str, episodes: int, seed: int = 0, num_envs: int = 10,
             on_episode: Callable[[Outcome], None] | None = None,
             envs: list[gymnasium.Env] | None = None,
             seeds: Callable[[int, int], int] = eval_seed) -> list[Outcome]:
    """``episodes`` episodes of ``env_id``, ``num_envs`` at a time (or on ``envs``, made by
    :func:`make_envs` with the same seed, left open); an episode succeeded if any of its steps'
    ``info["success"]`` was true. ``seeds(seed, i)`` gives episode i's env seed (practice:
    ``envs.seeds.practice_seed``)."""
    own = envs is None
    envs = make_envs(env_id, min(num_envs, episodes), seed) if envs is None else envs[:episodes]
    n = len(envs)
    try:
        policy.reset(n)
        states = np.zeros((n, policy.cfg.obs_dim), np.float32)
        playing: list[int | None] = [None] * n
        stats = np.zeros((n, 3))  # success, steps, return of the episode each env plays
        done: list[Outcome] = []
        nxt = 0

        def start(j: int) -> None:
            nonlocal nxt
            if nxt >= episodes:
                playing[j] = None
                return
            s = seeds(seed, nxt)
            obs, _ = envs[j].reset(seed=s)
            states[j], playing[j], stats[j] = obs["state"], nxt, 0
            policy.reset_env(j, nxt)  # its chunks' noise: seeded by the episode's index, as `thalamus eval` does
            nxt += 1

        for j in range(n):
            start(j)
        while any(p is not None for p in playing):
            active = np.array([p is not None for p in playing])
            actions = policy.act(states, active)
            for j in np.flatnonzero(active):
                obs, reward, terminated, truncated, info = envs[j].step(actions[j])
                states[j] = obs["state"]
                stats[j] += (float(bool(info.get("success", False))), 1, reward)
                if terminated or truncated:
                    k = playing[j]
                    out = Outcome(k, seeds(seed, k), bool(stats[j, 0] > 0), int(stats[j, 1]), float(stats[j, 2]))
                    done.append(out)
                    if on_episode is not None:
                        on_episode(out)
                    start(j)
        return sorted(done, key=lambda o: o.episode)
    finally:
        for env in envs if own else []:
            env.close()
