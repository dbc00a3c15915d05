"""The percept encoder: a small CNN on the camera frame plus a running-normalized state vector.

The percept is ``[normalized state (S), frame features (F)]``. The state part is what a controller
needs; the frame part carries what only the camera sees. The CNN is seeded and fixed for now: the
captioner (a later issue) replaces it with a trained, temporal encoder.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn


@dataclass
class PerceptionConfig:
    """Shapes of the percept encoder."""

    frame_features: int = 16  # F: size of the CNN embedding of one frame
    channels: int = 8  # width of the CNN (its first layer is a 4x4 patchify, for speed on a CPU)
    clip: float = 5.0  # normalized state is clipped to [-clip, clip]


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
    """Encodes a batch of (state, frame) into percept vectors ``[N, S + F]`` (float32)."""

    def __init__(self, state_dim: int, cfg: PerceptionConfig | None = None, seed: int = 0,
                 device: str = "cpu") -> None:
        self.cfg = cfg = cfg or PerceptionConfig()
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.frames = PerceptCNN(cfg.frame_features, cfg.channels).to(self.device).eval()
        self.norm = RunningNorm(state_dim)
        self.dim = state_dim + cfg.frame_features

    @torch.no_grad()
    def encode(self, state: np.ndarray, frame: np.ndarray, update_stats: bool = True) -> np.ndarray:
        """``state`` [N, S] float, ``frame`` [N, H, W, 3] uint8 → percept [N, S + F] float32."""
        state = np.asarray(state, dtype=np.float64)
        if update_stats:
            self.norm.update(state)
        s = np.clip(self.norm(state), -self.cfg.clip, self.cfg.clip)
        f = self.frames(torch.from_numpy(np.array(frame, dtype=np.uint8)).to(self.device))
        return np.concatenate([s, f.cpu().numpy()], axis=1).astype(np.float32)

    def state_dict(self) -> dict:
        """The CNN's weights and the running state normalization (arrays copied, not shared)."""
        return {"frames": {k: v.detach().cpu() for k, v in self.frames.state_dict().items()},
                "norm_mean": self.norm.mean.copy(),
                "norm_var": self.norm.var.copy(), "norm_count": self.norm.count}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (a resumed run)."""
        self.frames.load_state_dict(state["frames"])
        self.norm.mean, self.norm.var = np.array(state["norm_mean"]), np.array(state["norm_var"])
        self.norm.count = float(state["norm_count"])
