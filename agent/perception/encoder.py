"""The percept encoder: a small CNN on the camera frame plus a running-normalized state vector.

The percept is ``[normalized state (S), frame features (F)]``. The state part is what a controller
needs; the frame part carries what only the camera sees. The CNN is seeded and fixed for now: the
captioner (a later issue) replaces it with a trained, temporal encoder.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from agent.config import PerceptionConfig




class RunningNorm:
    """Running mean/variance (Chan et al. parallel update) used to standardize state vectors."""

    def __init__(self, dim: int) -> None:
        self.mean = np.zeros(dim)
        self.var = np.ones(dim)
        self.count = 1e-4

    def update(self, x: np.ndarray) -> None:
        batch_mean, batch_var, n = x.mean(0), x.var(0), x.shape[0]
        delta, total = batch_mean - self.mean, self.count + n
        self.mean = self.mean + delta * n / total
        m2 = self.var * self.count + batch_var * n + delta**2 * self.count * n / total
        self.var, self.count = m2 / total, total

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (x - self.mean) / np.sqrt(self.var + 1e-8)


class PerceptCNN(nn.Module):
    """uint8 [N, H, W, 3] → float [N, F]: a 4x4 patchify, two strided convolutions, global average,
    linear."""

    def __init__(self, features: int, channels: int) -> None:
        super().__init__()
        c = channels
        self.conv = nn.Sequential(
            nn.Conv2d(3, c, 4, stride=4), nn.ReLU(),
            nn.Conv2d(c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * c, 2 * c, 3, stride=2, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(2 * c, features)

    def forward(self, frame: torch.Tensor) -> torch.Tensor:
        x = frame.permute(0, 3, 1, 2).float() / 255.0  # [N, 3, H, W]
        x = self.conv(x).mean(dim=(2, 3))  # [N, C]
        return torch.tanh(self.head(x))  # [N, F]


class PerceptionModel:
    """Encodes a batch of (state, frame) into percept parts: the running-normalized state [N, S] and,
    with ``cnn``, the frame CNN's features [N, F] (without: a run of an earlier version whose policy
    acted on its captioner's features, which evaluation computes)."""

    def __init__(self, state_dim: int, cfg: PerceptionConfig | None = None, seed: int = 0,
                 device: str = "cpu", cnn: bool = True) -> None:
        self.cfg = cfg = cfg or PerceptionConfig()
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.frames = PerceptCNN(cfg.frame_features, cfg.channels).to(self.device).eval() if cnn else None
        self.norm = RunningNorm(state_dim)

    def encode_state(self, state: np.ndarray, update_stats: bool = True) -> np.ndarray:
        """``state`` [N, S] → normalized and clipped float32 [N, S] (statistics updated first)."""
        if not len(state):
            return np.zeros((0, len(self.norm.mean)), np.float32)
        state = np.asarray(state, dtype=np.float64)
        if update_stats:
            self.norm.update(state)
        return np.clip(self.norm(state), -self.cfg.clip, self.cfg.clip).astype(np.float32)

    @torch.no_grad()
    def encode_frames(self, frame: np.ndarray) -> np.ndarray:
        """``frame`` [N, H, W, 3] uint8 → the CNN's features float32 [N, F]."""
        assert self.frames is not None, "this model has no frame CNN (a captioner gives the features)"
        if not len(frame):
            return np.zeros((0, self.cfg.frame_features), np.float32)
        f = self.frames(torch.from_numpy(np.array(frame, dtype=np.uint8)).to(self.device))
        return f.cpu().numpy().astype(np.float32)

    def encode(self, state: np.ndarray, frame: np.ndarray, update_stats: bool = True) -> np.ndarray:
        """``state`` [N, S] float, ``frame`` [N, H, W, 3] uint8 → percept [N, S + F] float32."""
        return np.concatenate([self.encode_state(state, update_stats), self.encode_frames(frame)], axis=1)

    def state_dict(self) -> dict:
        """The CNN's weights and the running state normalization, as tensors (copies)."""
        frames = {} if self.frames is None else {k: v.detach().cpu().clone() for k, v in self.frames.state_dict().items()}
        return {"frames": frames, "norm_mean": torch.tensor(self.norm.mean), "norm_var": torch.tensor(self.norm.var),
                "norm_count": float(self.norm.count)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        if self.frames is not None:
            self.frames.load_state_dict(state["frames"])
        self.norm.mean = np.asarray(state["norm_mean"], dtype=np.float64)
        self.norm.var = np.asarray(state["norm_var"], dtype=np.float64)
        self.norm.count = float(state["norm_count"])
