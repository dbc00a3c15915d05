"""PolicyActor: percepts in, actions out; feeds transitions to the learner off the hot path.

The policy is PPO, learning from the reward, or (``--policy diffusion:PATH``) a trained diffusion
policy that only acts: :class:`DiffusionActing` puts it on the same percept stream.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from agent.channels import LatencyMeter, Overflow
from agent.config import PPOConfig, policy_choice
from agent.messages import Action, Percept, Transitions, decode, encode
from agent.outbox import Outbox
from agent.policy.diffusion import DiffusionCheckpoint, DiffusionConfig, DiffusionPolicy, PolicyFileError, SamplerConfig
from agent.policy.ppo import PPO

GIL_SWITCH_S = 0.0005  # the longest an update thread holding the GIL keeps a waiting act() waiting
FEED_EVERY = 16  # steps between two batches of transitions sent to the learner


def misfit(cfg: DiffusionConfig, discrete: bool, action_dim: int, state_dim: int) -> str | None:
    """How an env with these spaces does not fit a diffusion policy of ``cfg`` (None: it fits)."""
    def floats(n: int) -> str:
        return f"{n} float{'' if n == 1 else 's'}"

    if discrete:
        return f"its actions are discrete ({action_dim} choices), the policy's {floats(cfg.action_dim)}"
    if action_dim != cfg.action_dim:
        return f"its actions are {floats(action_dim)}, the policy's {floats(cfg.action_dim)}"
    if state_dim != cfg.obs_dim:
        return f"its states are {floats(state_dim)}, the policy's {floats(cfg.obs_dim)}"
    return None


class DiffusionActing:
    """A trained diffusion policy on the percept stream. It acts on the percept's first ``obs_dim``
    columns, the env's own state (the Agent has perception leave it unnormalized: the policy applies
    its demonstrations' normalizer), starts env i afresh when env i's episode ended, and learns nothing.

    Env i's chunks are seeded ``seed + i + num_envs * k`` in its k-th episode, so an episode's noise
    does not depend on which other envs need a chunk at the same step."""

    def __init__(self, path: Path, sampler: SamplerConfig, spec: dict[str, Any], num_envs: int, seed: int) -> None:
        ckpt = DiffusionCheckpoint.read(path)
        why = misfit(ckpt.config, spec["discrete"], spec["action_dim"], spec["state_dim"])
        if why is not None:
            raise PolicyFileError(f"--policy diffusion:{path} does not fit the env: {why}")
        self.path, self.obs_dim = path, ckpt.config.obs_dim
        self.policy = DiffusionPolicy(ckpt, sampler, device="cpu")
        self.seed, self.num_envs = seed, num_envs
        self.episodes = np.zeros(num_envs, np.int64)  # episodes each env has started (its noise seed's k)
        self.policy.reset(num_envs, [self._seed(i) for i in range(num_envs)])
        self.low, self.high = spec.get("action_low"), spec.get("action_high")

    def _seed(self, i: int) -> int:
        return self.seed + i + self.num_envs * int(self.episodes[i])

    def act(self, vector: np.ndarray, done: np.ndarray) -> np.ndarray:
        """Actions float32 [N, A] for percepts ``vector`` [N, D]; ``done[i]``: env i's episode ended with
        the last action, and row i is the first state of its next one (the env reset itself)."""
        for i in np.flatnonzero(done):
            self.episodes[i] += 1
            self.policy.reset_env(int(i), self._seed(int(i)))
        action = self.policy.act(vector[:, :self.obs_dim])
        return action if self.low is None else np.clip(action, self.low, self.high)

    def stats(self) -> dict[str, Any]:
        """The sampler, and the chunks it sampled: body evaluations per chunk, wall time per sampling
        call (the envs that ran out of actions at the same step are sampled as one batch)."""
        log = self.policy.chunks.summary()
        return {"policy": f"diffusion:{self.path}", "sampler": self.policy.sampler.cfg.name, "updates": 0,
                "chunks": log["chunks"], "body_evals_per_chunk": log["nfe_per_chunk"],
                "chunk_ms_p50": log["ms_p50"], "chunk_ms_p99": log["ms_p99"]}


class PolicyActor:
    """Runs :class:`PPO` on the percept stream; every ``feed_every`` steps sends the learner (a
    LearnerActor, or its Ray actor name) a batch of transitions (dropped, and counted, if the learner
    is behind). PPO updates run on a background thread, so an update never delays an action (acting
    uses the last finished update).

    With ``policy`` (``diffusion:PATH``) a trained diffusion policy sampled under ``sampler`` acts
    instead (:class:`DiffusionActing`); the learner is fed the same way."""

    def __init__(self, percept_dim: int, spec: dict[str, Any], num_envs: int, cfg: PPOConfig,
                 total_steps: int | None, seed: int, learner: Any = None, feed_every: int = FEED_EVERY,
                 policy: str | None = None, sampler: SamplerConfig | None = None) -> None:
        torch.set_num_threads(1)
        # act() shares the GIL with the update thread: offer it every 0.5 ms, not Python's 5 ms
        sys.setswitchinterval(GIL_SWITCH_S)
        self.discrete = spec["discrete"]
        self.action_dim = spec["action_dim"]
        self.ppo: PPO | None = None
        self.diffusion: DiffusionActing | None = None
        if policy is None:
            self.ppo = PPO(percept_dim, self.action_dim, self.discrete, num_envs, replace(cfg, background_update=True),
                           total_steps, spec.get("action_low"), spec.get("action_high"), seed=seed)
        else:
            _, path = policy_choice(policy)
            self.diffusion = DiffusionActing(Path(path), sampler or SamplerConfig(), spec, num_envs, seed)
        self.hop = LatencyMeter()
        if isinstance(learner, str):  # the LearnerActor's Ray name
            learner = ray.get_actor(learner)
        self.learner = (Outbox("policy→learner", learner, "push", window=4, overflow=Overflow.DROP_NEWEST)
                        if learner is not None else None)
        self.feed_every = feed_every
        self._prev: tuple[np.ndarray, np.ndarray] | None = None
        self._feed: list[tuple[np.ndarray, ...]] = []

    def act(self, percept_msg: bytes) -> bytes:
        p = decode(percept_msg, Percept)
        self.hop.add_ns(p.sent_ns)
        if self.ppo is not None:
            action = self.ppo.act(p.vector, p.reward, p.done, p.final_index, p.final_vector)
        else:
            action = self.diffusion.act(p.vector, p.done)
        if self.learner is not None:
            self._collect(p)
            self._prev = (p.vector, action)
        return encode(Action(step=p.step, action=action))

    def _collect(self, p: Percept) -> None:
        if self._prev is not None:
            percept, action = self._prev
            onehot = np.eye(self.action_dim, dtype=np.float32)[action] if self.discrete else action
            self._feed.append((percept, onehot.reshape(len(percept), -1), p.reward, p.vector, p.done))
        if len(self._feed) >= self.feed_every:
            cols = [np.concatenate(c) for c in zip(*self._feed)]
            self._feed.clear()
            self.learner.send(encode(Transitions(percept=cols[0], action=cols[1], reward=cols[2],
                                                 next_percept=cols[3], done=cols[4])))

    def stats(self) -> dict[str, Any]:
        if self.ppo is not None:
            self.ppo.wait()
            policy = {"updates": self.ppo.updates, **self.ppo.last_losses}
        else:
            policy = self.diffusion.stats()
        return {"hop_perception_policy": self.hop.summary(), **policy,
                "channel_learner": self.learner.stats().to_dict() if self.learner else None}

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer state and update count as of the last finished PPO update; for a
        diffusion policy, which does not learn, only the path of the checkpoint it acts with."""
        if self.ppo is not None:
            return self.ppo.checkpoint()
        return {"diffusion_policy": str(self.diffusion.path)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        if self.ppo is not None:
            self.ppo.load_checkpoint(state)
        elif "net" in state:
            raise ValueError("this checkpoint's policy is PPO's, and this run acts with a diffusion policy")
