"""PolicyActor: percepts in, actions out; feeds transitions to the learner off the hot path."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import Any

import numpy as np
import ray
import torch

from agent.channels import LatencyMeter, Overflow
from agent.messages import Action, Percept, Transitions, decode, encode
from agent.outbox import Outbox
from agent.config import PPOConfig
from agent.policy.ppo import PPO

GIL_SWITCH_S = 0.0005  # the longest an update thread holding the GIL keeps a waiting act() waiting


class PolicyActor:
    """Runs :class:`PPO` on the percept stream; every ``feed_every`` steps sends the learner (a
    LearnerActor, or its Ray actor name) a batch of transitions (dropped, and counted, if the learner
    is behind). PPO updates run on a background thread, so an update never delays an action (acting
    uses the last finished update)."""

    def __init__(self, percept_dim: int, spec: dict[str, Any], num_envs: int, cfg: PPOConfig,
                 total_steps: int | None, seed: int, learner: Any = None, feed_every: int = 16) -> None:
        torch.set_num_threads(1)
        # act() shares the GIL with the update thread: offer it every 0.5 ms, not Python's 5 ms
        sys.setswitchinterval(GIL_SWITCH_S)
        self.discrete = spec["discrete"]
        self.action_dim = spec["action_dim"]
        self.ppo = PPO(percept_dim, self.action_dim, self.discrete, num_envs, replace(cfg, background_update=True),
                       total_steps, spec.get("action_low"), spec.get("action_high"), seed=seed)
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
        action = self.ppo.act(p.vector, p.reward, p.done, p.final_index, p.final_vector)
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
        self.ppo.wait()
        return {"hop_perception_policy": self.hop.summary(), "updates": self.ppo.updates,
                **self.ppo.last_losses,
                "channel_learner": self.learner.stats().to_dict() if self.learner else None}

    def state_dict(self) -> dict[str, Any]:
        """Weights, optimizer state and update count as of the last finished PPO update."""
        return self.ppo.checkpoint()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        self.ppo.load_checkpoint(state)
