"""RecorderActor: the only writer of the run's Zarr store; buffers episodes, writes whole chunks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.channels import LatencyMeter
from agent.messages import Episode, decode
from agent.resume import has_episodes
from memory import ArraySpec, create_store, open_store


class RecorderActor:
    """Receives finished :class:`Episode` messages and commits them to ``RUN_DIR/store.zarr``
    (a new store; with ``resume``, appended to the run's existing one)."""

    def __init__(self, run_dir: str, specs: dict[str, ArraySpec], resume: bool = False) -> None:
        path = Path(run_dir)
        self.writer = open_store(path, mode="a") if resume and has_episodes(path) else create_store(path, specs)
        self.hop = LatencyMeter()

    def add(self, payload: bytes) -> None:
        msg = decode(payload, Episode)
        self.hop.add_ns(msg.sent_ns)
        self.writer.add_episode(msg.data, task=msg.task)

    def stats(self) -> dict[str, Any]:
        return {"hop_env_recorder": self.hop.summary(), "episodes_committed": self.writer.n_episodes,
                "steps_committed": self.writer.n_steps, "store_bytes": self.writer.bytes_on_disk}

    def close(self) -> dict[str, Any]:
        self.writer.close()
        return self.stats()
