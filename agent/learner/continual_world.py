"""The run's learner as a continual learner: a trc world model trained in the order things happened.

Transitions ``(percept, action) → (next-percept delta, reward)`` arrive from the policy; each
``train_step`` takes the oldest ``batch_size`` not yet learned and makes one trc step on them (no
shuffled replay buffer: remembering is the cache's and the spectral memory's job). Task boundaries,
when the run has them, consolidate the spectral memories; without them, every ``consolidate_every``
steps does. The cache and spectral memories are saved into the run store (`memory.save_learner_memory`)
and reloaded from it when the run directory already holds them.
"""

from __future__ import annotations

import collections
from pathlib import Path

import numpy as np
import torch
from torch import nn

from agent.learner.trc import TRC, TRCConfig
from memory import save_learner_memory


class ContinualWorldModel(nn.Module):
    """[percept, action] → (next percept, reward) through routed columns; a batch is read as a stream."""

    def __init__(self, percept_dim: int, action_dim: int, cfg: TRCConfig, seed: int = 0,
                 device: str = "cpu") -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.trc = TRC(cfg, seed, in_dim=percept_dim + action_dim, out_dim=percept_dim + 1, regression=True,
                       device=device)
        self.net = self.trc.net  # its weights are this module's (state_dict, load_state_dict)

    def forward(self, percept: torch.Tensor, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out, _ = self.trc.predict(torch.cat([percept, action], -1))
        return percept + out[..., :-1], out[..., -1]


class ContinualTrainer:
    """``add`` transitions, ``train_step`` learns the oldest batch; the same interface as
    :class:`WorldModelTrainer`, so the LearnerActor runs either."""

    def __init__(self, percept_dim: int, action_dim: int, cfg, seed: int = 0, run_dir: str | None = None,
                 backlog: int = 16_384, device: str = "cpu") -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.model = ContinualWorldModel(percept_dim, action_dim, TRCConfig(lr=cfg.continual_lr), seed, device)
        self.trc = self.model.trc
        self.run_dir = Path(run_dir) if run_dir else None
        self.pending: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque(maxlen=backlog)
        self.size = self.updates = self.dropped = 0
        self.task = 0
        self.losses = {"next_percept_mse": float("nan"), "reward_mse": float("nan")}

    def add(self, percept: np.ndarray, action: np.ndarray, reward: np.ndarray,
            next_percept: np.ndarray, done: np.ndarray) -> None:
        """Queue transitions in order; those crossing an episode end have no next percept."""
        keep = ~np.asarray(done, dtype=bool)
        x = np.concatenate([percept, action], 1)[keep].astype(np.float32)
        y = np.concatenate([next_percept - percept, reward[:, None]], 1)[keep].astype(np.float32)
        self.dropped += max(0, len(self.pending) + len(x) - (self.pending.maxlen or 0))
        self.pending.extend(zip(x, y))
        self.size += len(x)

    def train_step(self) -> bool:
        """One trc step on the oldest ``batch_size`` transitions; False when fewer are waiting."""
        n = min(self.cfg.batch_size, 64)
        if len(self.pending) < n:
            return False
        rows = [self.pending.popleft() for _ in range(n)]
        x = torch.from_numpy(np.stack([r[0] for r in rows])).to(self.device)
        y = torch.from_numpy(np.stack([r[1] for r in rows])).to(self.device)
        loss = self.trc.step(x, y, self.task, True)
        self.updates += 1
        if self.updates % self.cfg.consolidate_every == 0:
            self.trc.spectral.consolidate()
        with torch.no_grad():
            pred = self.trc.logits(x)
        self.losses = {"next_percept_mse": float((pred[:, :-1] - y[:, :-1]).pow(2).mean()),
                       "reward_mse": float((pred[:, -1] - y[:, -1]).pow(2).mean()), "trc_loss": loss}
        return True

    def task_boundary(self, task: int) -> None:
        """The run moved to ``task``: consolidate what the last one taught."""
        self.trc.spectral.consolidate()
        self.trc.begin_task(task)
        self.task = task
        self.save()

    def state_dict(self) -> dict:
        """trc's whole state with the update count and task: what a checkpoint keeps of the learner."""
        return {"trc": self.trc.state_dict(), "updates": self.updates, "task": self.task}

    def load_state_dict(self, state: dict) -> None:
        """Continue from a :meth:`state_dict` (a resumed run, or a restarted actor)."""
        self.trc.load_state_dict(state["trc"])
        self.updates, self.task = int(state["updates"]), int(state["task"])

    def save(self) -> None:
        """Write the cache and spectral memories into the run store, for `thalamus memory inspect`
        (a resumed run takes them from its checkpoint, not from here)."""
        if self.run_dir is not None and self.trc.cache.size:
            cache, columns = self.trc.memory_blocks()
            save_learner_memory(self.run_dir, cache, columns, self.updates)
