"""LearnerActor: trains the world model in its own thread, off the per-step hot path."""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from agent.channels import Channel, LatencyMeter, Overflow
from agent.learner.world_model import LearnerConfig, WorldModelTrainer
from agent.messages import Transitions, decode


class LearnerActor:
    """``push`` only validates and queues (drop-oldest inbox); a background thread trains."""

    def __init__(self, percept_dim: int, action_dim: int, cfg: LearnerConfig, seed: int,
                 device: str = "cpu", inbox_capacity: int = 32) -> None:
        torch.set_num_threads(1)
        self.trainer = WorldModelTrainer(percept_dim, action_dim, cfg, seed=seed, device=device)
        self.inbox: Channel[Transitions] = Channel("learner inbox", inbox_capacity, Overflow.DROP_OLDEST)
        self.hop = LatencyMeter()
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="learner", daemon=True)
        self._thread.start()

    def push(self, payload: bytes) -> None:
        msg = decode(payload, Transitions)
        self.hop.add_ns(msg.sent_ns)
        self.inbox.put(msg)

    def _loop(self) -> None:
        period = 1.0 / self.trainer.cfg.max_updates_per_s
        try:
            while not self._stop.is_set():
                for msg in self.inbox.get_all():
                    self.trainer.add(msg.percept, msg.action, msg.reward, msg.next_percept, msg.done)
                started = time.monotonic()
                self.trainer.train_step()
                self._stop.wait(max(0.0, period - (time.monotonic() - started)))
        except Exception as exc:  # reported through stats(); the actor itself stays up
            self.error = f"{type(exc).__name__}: {exc}"

    def stats(self) -> dict[str, Any]:
        return {"hop_policy_learner": self.hop.summary(), "updates": self.trainer.updates,
                "replay": self.trainer.size, **self.trainer.losses, "error": self.error,
                "channel_inbox": self.inbox.stats().to_dict()}

    def close(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.stats()

    def state_dict(self) -> dict[str, Any]:
        return {"model": self.trainer.model.state_dict()}
