"""An MLP world model that predicts the next percept and the reward from (percept, action).

Trained from a bounded replay of transitions on random mini-batches. Its losses are the learner's
progress signal; its prediction error will become the router's surprise in the continual learner.
"""

from __future__ import annotations


import numpy as np
import torch
from torch import nn

from agent.config import LearnerConfig
from agent.optim import Adam




class WorldModel(nn.Module):
    """[percept, action] → [next-percept delta, reward]."""

    def __init__(self, percept_dim: int, action_dim: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(percept_dim + action_dim, hidden), nn.SiLU(),
            nn.Linear(hidden, hidden), nn.SiLU(),
            nn.Linear(hidden, percept_dim + 1),
        )

    def forward(self, percept: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(torch.cat([percept, action], dim=-1))
        return percept + out[..., :-1], out[..., -1]


class WorldModelTrainer:
    """Replay buffer + optimizer for a :class:`WorldModel`; ``add`` then ``train_step``."""

    def __init__(self, percept_dim: int, action_dim: int, cfg: LearnerConfig | None = None,
                 seed: int = 0, device: str = "cpu") -> None:
        self.cfg = cfg = cfg or LearnerConfig()
        self.device = torch.device(device)
        torch.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.model = WorldModel(percept_dim, action_dim, cfg.hidden).to(self.device)
        self.opt = Adam(self.model.parameters(), lr=cfg.learning_rate)
        cap = cfg.replay_capacity
        self.percept = np.zeros((cap, percept_dim), np.float32)
        self.action = np.zeros((cap, action_dim), np.float32)
        self.reward = np.zeros(cap, np.float32)
        self.next_percept = np.zeros((cap, percept_dim), np.float32)
        self.size = self.head = self.updates = 0
        self.losses = {"next_percept_mse": float("nan"), "reward_mse": float("nan")}

    def add(self, percept: np.ndarray, action: np.ndarray, reward: np.ndarray,
            next_percept: np.ndarray, done: np.ndarray) -> None:
        """Store transitions; those crossing an episode end (``done``) have no next percept."""
        keep = ~np.asarray(done, dtype=bool)
        cap = self.cfg.replay_capacity
        rows = [np.asarray(a)[keep][-cap:] for a in (percept, action, reward, next_percept)]
        idx = (self.head + np.arange(len(rows[0]))) % cap
        for buf, row in zip((self.percept, self.action, self.reward, self.next_percept), rows):
            buf[idx] = row
        self.head = (self.head + len(idx)) % cap
        self.size = min(self.size + len(idx), cap)

    def train_step(self) -> bool:
        """One gradient step on a random mini-batch; False when there is not enough data yet."""
        if self.size < self.cfg.batch_size:
            return False
        idx = self.rng.integers(0, self.size, self.cfg.batch_size)
        percept, action, reward, next_percept = (
            torch.as_tensor(a[idx], device=self.device)
            for a in (self.percept, self.action, self.reward, self.next_percept)
        )
        pred_next, pred_reward = self.model(percept, action)
        next_loss = (pred_next - next_percept).pow(2).mean()
        reward_loss = (pred_reward - reward).pow(2).mean()
        self.opt.zero_grad()
        (next_loss + reward_loss).backward()
        self.opt.step()
        self.updates += 1
        self.losses = {"next_percept_mse": next_loss.item(), "reward_mse": reward_loss.item()}
        return True

    def task_boundary(self, task: int) -> None:
        """Nothing to consolidate: this learner keeps no memories across tasks."""

    def state_dict(self) -> dict:
        """Weights, optimizer state and update count (the replay buffer is not kept)."""
        return {"model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
                "optimizer": self.opt.state_dict(), "updates": self.updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])

    def save(self) -> None:
        """Nothing to commit: this learner keeps no memories in the run store."""
