"""PerceptionActor: observation batches in, percept batches out (on the per-step hot path)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from agent.channels import LatencyMeter
from agent.messages import Observation, Percept, decode, encode
from agent.perception.encoder import PerceptionConfig, PerceptionModel


class PerceptionActor:
    """Wraps :class:`PerceptionModel`; passes the reward and done flags through to the policy."""

    def __init__(self, state_dim: int, cfg: PerceptionConfig, seed: int, device: str = "cpu") -> None:
        torch.set_num_threads(1)
        self.model = PerceptionModel(state_dim, cfg, seed=seed, device=device)
        self.hop = LatencyMeter()

    def encode(self, obs_msg: bytes) -> bytes:
        obs = decode(obs_msg, Observation)
        self.hop.add_ns(obs.sent_ns)
        vector = self.model.encode(obs.state, obs.frame)
        final = (self.model.encode(obs.final_state, obs.final_frame, update_stats=False)
                 if len(obs.final_index) else np.zeros((0, vector.shape[1]), np.float32))
        return encode(Percept(step=obs.step, vector=vector, reward=obs.reward,
                              done=obs.terminated | obs.truncated, final_index=obs.final_index,
                              final_vector=final))

    def stats(self) -> dict[str, Any]:
        return {"hop_env_perception": self.hop.summary()}

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()
