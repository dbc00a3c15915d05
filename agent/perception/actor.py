"""PerceptionActor: observation batches in, percept batches out (on the per-step hot path).

Each percept carries the encoder's vector for the policy and, when a captioner checkpoint is given,
the caption of every env's frame as token ids (one streaming captioner state per env).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.channels import LatencyMeter
from agent.messages import Observation, Percept, decode, encode
from agent.perception.encoder import PerceptionConfig, PerceptionModel


class PerceptionActor:
    """Wraps :class:`PerceptionModel` (and a ``LiveCaptioner``); passes reward and done flags on."""

    def __init__(self, state_dim: int, cfg: PerceptionConfig, seed: int, device: str = "cpu",
                 captioner: str | None = None, num_envs: int = 1) -> None:
        torch.set_num_threads(1)
        self.model = PerceptionModel(state_dim, cfg, seed=seed, device=device)
        self.captioner = None
        if captioner is not None:
            from agent.perception.live import LiveCaptioner  # imports triton: only when captioning

            self.captioner = LiveCaptioner(Path(captioner), streams=num_envs, device=device)
        self.last_caption: np.ndarray | None = None
        self.hop = LatencyMeter()

    def encode(self, obs_msg: bytes) -> bytes:
        obs = decode(obs_msg, Observation)
        self.hop.add_ns(obs.sent_ns)
        vector = self.model.encode(obs.state, obs.frame)
        final = (self.model.encode(obs.final_state, obs.final_frame, update_stats=False)
                 if len(obs.final_index) else np.zeros((0, vector.shape[1]), np.float32))
        caption = np.zeros((0, 0), np.int16)
        if self.captioner is not None:
            caption = self.last_caption = self.captioner.tokens(obs.frame)
        return encode(Percept(step=obs.step, vector=vector, reward=obs.reward,
                              done=obs.terminated | obs.truncated, final_index=obs.final_index,
                              final_vector=final, caption=caption))

    def caption_now(self, env: int = 0) -> str | None:
        """The caption of ``env``'s latest frame (None without a captioner or before the first)."""
        if self.captioner is None or self.last_caption is None:
            return None
        return self.captioner.text(self.last_caption[env])

    def stats(self) -> dict[str, Any]:
        return {"hop_env_perception": self.hop.summary()}

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        self.model.load_state_dict(state)
