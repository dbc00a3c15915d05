"""PerceptionActor: observation batches in, percept batches out (on the per-step hot path).

The percept is ``[normalized state, frame features]`` (for a policy that normalizes the state
itself, a diffusion policy, the state as the env gave it); the frame features are a small seeded
CNN's embedding. With a captioner, each batch's frames also go on to the ``CaptionActor``
(``caption_actor.py``) after the percept is made: captions never hold up acting, and never reach the
policy.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import ray

from agent.channels import LatencyMeter
from agent.config import PerceptionConfig
from agent.messages import CaptionFrames, Observation, Percept, decode, encode
from agent.outbox import Outbox
from agent.pipe_channel import PipeOutbox
from agent.pipes import PeerClosed
from agent.perception.encoder import PerceptionModel
from envs.clips import square_resize


class PerceptionActor:
    """Wraps :class:`PerceptionModel`; passes reward and done flags on, and frames to a captioner."""

    def __init__(self, state_dim: int, cfg: PerceptionConfig, seed: int, device: str = "cpu",
                 normalize_state: bool = True, captioner: Any = None, caption_size: int = 0,
                 frames_pipe: bool = False) -> None:
        """``normalize_state=False``: the percept's state part is the env's own, unscaled.
        ``captioner``: the CaptionActor (or its Ray name: a restarted perception finds it again) that
        gets each batch's frames, resized to ``caption_size``, blocking when 8 sends are in flight (every
        frame is captioned). ``frames_pipe`` (the captioner on this node): the frames go through its
        named pipe, not as actor calls; if its process dies, later frames go as calls to its restart."""
        import torch

        torch.set_num_threads(1)
        self.model = PerceptionModel(state_dim, cfg, seed=seed, device=device)
        # a diffusion policy normalizes the state with its demonstrations' statistics: a running
        # normalization here would hand it a drifting scale it was never trained on
        self.normalize_state = normalize_state
        if isinstance(captioner, str):
            captioner = ray.get_actor(captioner)
        self._captioner = captioner
        self.captioner: Outbox | PipeOutbox | None = None
        if captioner is not None and frames_pipe:
            path = ray.get(captioner.open_frames_pipe.remote())
            self.captioner = PipeOutbox("perception→captioner", path,
                                        lambda n: ray.get(captioner.frames_received.remote(n)))
        elif captioner is not None:
            self.captioner = Outbox("perception→captioner", captioner, "add", window=8)
        self._lost = 0  # frames lost with a captioner process that died
        self.caption_size = caption_size
        self.hop = LatencyMeter()

    @staticmethod
    def percept_dim(state_dim: int, cfg: PerceptionConfig) -> int:
        """Size of the percept vector for this state size."""
        return state_dim + cfg.frame_features

    def _caption(self, step: int, frames: np.ndarray) -> None:
        if frames.shape[1:3] != (self.caption_size, self.caption_size):
            frames = np.stack([square_resize(f, self.caption_size) for f in frames])
        msg = encode(CaptionFrames(step=step, frames=frames))
        try:
            self.captioner.send(msg)
        except PeerClosed:  # the captioner died: Ray restarts it, and later frames go to it as calls
            self._lost += self.captioner.stats().lost
            self.captioner = Outbox("perception→captioner", self._captioner, "add", window=8)

    def encode(self, obs_msg: bytes) -> bytes:
        obs = decode(obs_msg, Observation)
        self.hop.add_ns(obs.sent_ns)
        if self.normalize_state:
            state = self.model.encode_state(obs.state)
            final_state = self.model.encode_state(obs.final_state, update_stats=False)
        else:
            state, final_state = obs.state.astype(np.float32), obs.final_state.astype(np.float32)
        frames = self.model.encode_frames(obs.frame)
        final_frames = self.model.encode_frames(obs.final_frame)
        vector = np.concatenate([state, frames], 1).astype(np.float32)
        final = np.concatenate([final_state, final_frames], 1).astype(np.float32)
        if self.captioner is not None:
            self._caption(obs.step, obs.frame)
        return encode(Percept(step=obs.step, vector=vector, reward=obs.reward,
                              done=obs.terminated | obs.truncated, final_index=obs.final_index,
                              final_vector=final))

    def flush(self) -> None:
        """Wait until every batch's frames encoded so far are with the captioner."""
        if self.captioner is not None:
            self.captioner.drain()

    def stats(self) -> dict[str, Any]:
        """Hop latency and the channel to the captioner."""
        return {"hop_env_perception": self.hop.summary(),
                "channel_captioner": self._channel_stats()}

    def _channel_stats(self) -> dict[str, Any] | None:
        if self.captioner is None:
            return None
        stats = self.captioner.stats()
        return replace(stats, lost=stats.lost + self._lost).to_dict()

    def state_dict(self) -> dict[str, Any]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        self.model.load_state_dict(state)
