"""LearnerActor: trains the world model in its own thread, off the per-step hot path.

With ``method="trc"`` (the default) the world model is the continual learner. Its whole state, cache
and spectral memories included, goes into the run's checkpoints (``state_dict``, taken while the
ring is held, so weights and memories are of one moment); the memories are also written into the run
store at task boundaries and at the end, for `thalamus memory inspect`.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import torch

from agent.channels import Channel, LatencyMeter, Overflow
from agent.learner.continual_world import ContinualTrainer
from agent.config import LearnerConfig
from agent.learner.world_model import WorldModelTrainer
from agent.messages import Transitions, decode


class LearnerActor:
    """``push`` only validates and queues (drop-oldest inbox); a background thread trains."""

    def __init__(self, percept_dim: int, action_dim: int, cfg: LearnerConfig, seed: int,
                 device: str = "cpu", run_dir: str | None = None, inbox_capacity: int = 32) -> None:
        torch.set_num_threads(1)
        if cfg.method == "trc":
            self.trainer: Any = ContinualTrainer(percept_dim, action_dim, cfg, seed=seed, run_dir=run_dir,
                                                 device=device)
        elif cfg.method == "mlp":
            self.trainer = WorldModelTrainer(percept_dim, action_dim, cfg, seed=seed, device=device)
        else:
            raise ValueError(f"learner method must be 'trc' or 'mlp', got {cfg.method!r}")
        self.lock = threading.Lock()  # the training thread and actor calls take turns on the trainer
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
                started = time.monotonic()
                with self.lock:
                    for msg in self.inbox.get_all():
                        self.trainer.add(msg.percept, msg.action, msg.reward, msg.next_percept, msg.done)
                    self.trainer.train_step()
                self._stop.wait(max(0.0, period - (time.monotonic() - started)))
        except Exception as exc:  # reported through stats(); the actor itself stays up
            self.error = f"{type(exc).__name__}: {exc}"

    def stats(self) -> dict[str, Any]:
        return {"hop_policy_learner": self.hop.summary(), "device": str(self.trainer.device),
                "updates": self.trainer.updates,
                "replay": self.trainer.size, **self.trainer.losses, "error": self.error,
                "channel_inbox": self.inbox.stats().to_dict()}

    def task_boundary(self, task: int) -> None:
        """The run moves to ``task`` (consolidate and commit the memories of the last one)."""
        with self.lock:
            self.trainer.task_boundary(task)

    def close(self) -> dict[str, Any]:
        self._stop.set()
        self._thread.join(timeout=10)
        with self.lock:
            self.trainer.save()
        return self.stats()

    def state_dict(self) -> dict[str, Any]:
        """The trainer's whole state (weights, optimizer, memories), between two training steps."""
        with self.lock:
            return self.trainer.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict` (a resumed run, or this actor restarted by Ray)."""
        with self.lock:
            self.trainer.load_state_dict(state)
