"""PerceptionActor: observation batches in, percept batches out (on the per-step hot path).

The percept is ``[normalized state, frame features]`` (for a policy that normalizes the state
itself, a diffusion policy, the state as the env gave it). The frame features are computed once per
frame: with a captioner they are its trained temporal feature (one streaming state per env); the
caption decoded from that same feature is not waited for: a thread decodes it after the percept has
gone on (``caption_thread.py``) and sends it to the recorder keyed by (env, step), with its lag.
Without a captioner, a small seeded CNN's embedding.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.channels import LatencyMeter
from agent.messages import Captions, Observation, Percept, decode, encode
from agent.outbox import Outbox
from agent.config import PerceptionConfig
from agent.perception.caption_thread import CaptionThread
from agent.perception.encoder import PerceptionModel


class PerceptionActor:
    """Wraps :class:`PerceptionModel` (and a ``LiveCaptioner``); passes reward and done flags on."""

    def __init__(self, state_dim: int, cfg: PerceptionConfig, seed: int, device: str = "cpu",
                 captioner: str | None = None, num_envs: int = 1, normalize_state: bool = True) -> None:
        """``normalize_state=False``: the percept's state part is the env's own, unscaled."""
        torch.set_num_threads(1)
        self.captioner = None
        if captioner is not None:
            from agent.perception.live import LiveCaptioner  # imports triton: only when captioning

            self.captioner = LiveCaptioner(Path(captioner), streams=num_envs, device=device)
        self.model = PerceptionModel(state_dim, cfg, seed=seed, device=device,
                                     cnn=self.captioner is None)
        # a diffusion policy normalizes the state with its demonstrations' statistics: a running
        # normalization here would hand it a drifting scale it was never trained on
        self.normalize_state = normalize_state
        self.recorder: Outbox | None = None
        self.captions = None if self.captioner is None else CaptionThread(self.captioner.decode, self._deliver)
        self.hop = LatencyMeter()

    @staticmethod
    def percept_dim(state_dim: int, cfg: PerceptionConfig, captioner: str | None) -> int:
        """Size of the percept vector for this state size and captioner (read from its checkpoint)."""
        if captioner is None:
            return state_dim + cfg.frame_features
        from agent.perception.train import checkpoint_config

        return state_dim + checkpoint_config(Path(captioner)).d_model

    def attach_recorder(self, recorder: Any) -> None:
        """Send each batch's captions to ``recorder.add_captions`` (blocking when 16 are in flight)."""
        self.recorder = Outbox("perception→recorder", recorder, "add_captions", window=16)

    def _deliver(self, step: int, tokens: np.ndarray, lag: int) -> None:
        """One step's decoded captions (on the caption thread) to the recorder."""
        if self.recorder is not None:
            self.recorder.send(encode(Captions(step=step, tokens=tokens, lag=lag)))

    def encode(self, obs_msg: bytes) -> bytes:
        obs = decode(obs_msg, Observation)
        self.hop.add_ns(obs.sent_ns)
        if self.normalize_state:
            state = self.model.encode_state(obs.state)
            final_state = self.model.encode_state(obs.final_state, update_stats=False)
        else:
            state, final_state = obs.state.astype(np.float32), obs.final_state.astype(np.float32)
        if self.captioner is None:
            frames = self.model.encode_frames(obs.frame)
            final_frames = self.model.encode_frames(obs.final_frame)
        else:
            final_frames = self.captioner.peek_features(obs.final_frame, obs.final_index)
            feature = self.captioner.features(obs.frame)  # advances every env's stream by its frame
            frames = feature.float().cpu().numpy()
            self.captions.submit(obs.step, feature)
        vector = np.concatenate([state, frames], 1).astype(np.float32)
        final = np.concatenate([final_state, final_frames], 1).astype(np.float32)
        return encode(Percept(step=obs.step, vector=vector, reward=obs.reward,
                              done=obs.terminated | obs.truncated, final_index=obs.final_index,
                              final_vector=final))

    def caption_now(self, env: int = 0) -> str | None:
        """The caption of ``env``'s latest frame (None without a captioner or before the first)."""
        latest = None if self.captions is None else self.captions.latest
        return None if latest is None else self.captioner.text(latest[env])

    def flush(self) -> None:
        """Wait until every frame encoded so far has its caption decoded and at the recorder."""
        if self.captions is not None:
            self.captions.drain()
        if self.recorder is not None:
            self.recorder.drain()

    def stats(self) -> dict[str, Any]:
        """Hop latency, the recorder channel, and the captions' lag behind their frames (in steps)."""
        return {"hop_env_perception": self.hop.summary(),
                "channel_recorder": self.recorder.stats().to_dict() if self.recorder else None,
                **({"caption_lag_steps": self.captions.lag_summary()} if self.captions is not None else {})}

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        self.model.load_state_dict(state)
