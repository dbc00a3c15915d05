"""RecorderActor: the only writer of the run's Zarr store; joins captions to steps, writes whole chunks.

Episodes come from the EnvActor, captions from perception, on two channels: a caption is keyed by
(env, batch step) and joined to the episode row of that step. An episode waits (in order) until
every caption of its rows has come; at ``close`` the ones still missing are padded and counted.
"""

from __future__ import annotations

import collections
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from agent.channels import LatencyMeter, Overflow
from agent.messages import Captions, Episode, decode
from agent.outbox import Outbox
from memory import ArraySpec, EpisodeWriter, StoreBusy, create_store, open_store
from memory.layout import has_episodes


def store_specs(spec: dict[str, Any], caption_len: int = 0) -> dict[str, ArraySpec]:
    """The per-step arrays of the run store for an env of this ``spec`` (see ``EnvActor.spec``):
    with ``caption_len`` > 0, also each step's caption as int16 token ids (``<pad>``-filled), its lag
    (how many later batches perception had encoded when it was decoded; -1: never came) and whether
    the captioner skipped the step's frame to keep up (the caption is then the next read frame's); for
    tasks with targets (``spec["targets"]``), each step's true label (the right action); for envs that
    report success (``spec["success"]``, Meta-World's), whether the step achieved the task."""
    specs = {
        "obs": ArraySpec((spec["state_dim"],), "float32"),
        "frame": ArraySpec(tuple(spec["frame_shape"]), "uint8"),
        "action": ArraySpec(tuple(spec["action_shape"]), "int64" if spec["discrete"] else "float32"),
        "reward": ArraySpec((), "float32"),
        "terminated": ArraySpec((), "bool"),
        "truncated": ArraySpec((), "bool"),
        "task": ArraySpec((), "int32"),
        "time": ArraySpec((), "float64"),
        "step": ArraySpec((), "int64"),  # the batch step: env i's row of step s was acted on together with env j's
        "stopped": ArraySpec((), "bool"),  # the run cut this episode short here (not an end of the env's own)
        "env": ArraySpec((), "int16"),  # which of the run's envs stepped this row (`thalamus view` draws each apart)
    }
    if caption_len:
        specs["caption"] = ArraySpec((caption_len,), "int16")
        specs["caption_lag"] = ArraySpec((), "int16")
        specs["caption_skipped"] = ArraySpec((), "bool")
    if spec.get("targets"):
        specs["target"] = ArraySpec((), "int64")
    if spec.get("success"):
        specs["success"] = ArraySpec((), "bool")  # the env said the task was achieved at this step
    return specs


def _append(run_dir: Path, wait_s: float) -> EpisodeWriter:
    """The run's store opened for appending (a half-written flush cut off), once the writer lock of
    a recorder that was killed has been let go (within ``wait_s``)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return open_store(run_dir, mode="a")
        except StoreBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class RecorderActor:
    """Commits finished :class:`Episode` messages, with their captions, to ``RUN_DIR/store.zarr``: a
    new store, or appended to the run's own (a resumed run, or this actor restarted by Ray after its
    process died: the episodes and captions in flight then are lost, and counted). With a ``viewer``
    (a ViewerActor, or the name Ray knows it by), each committed episode is also sent there, through a
    window that drops episodes rather than wait for a slow viewer. In one process (no Ray) episodes and
    captions arrive on different threads: a lock keeps their writes apart."""

    def __init__(self, run_dir: str, specs: dict[str, ArraySpec], wait_s: float = 15.0, viewer: Any = None) -> None:
        path = Path(run_dir)
        self.writer = _append(path, wait_s) if has_episodes(path) else create_store(path, specs)
        self.caption_len = specs["caption"].shape[0] if "caption" in specs else 0
        self.captions: dict[tuple[int, int], tuple[np.ndarray, int, bool]] = {}  # (env, step) → (tokens, lag, skipped)
        self.waiting: collections.deque[Episode] = collections.deque()
        self.captions_missing = 0
        self.newest = -1  # the newest batch step a caption came for
        self.hop = LatencyMeter()
        self._lock = threading.Lock()
        if isinstance(viewer, str):
            import ray

            viewer = ray.get_actor(viewer)
        self.viewer = None if viewer is None else Outbox("recorder→viewer", viewer, "add", window=16,
                                                         overflow=Overflow.DROP_NEWEST)

    def add(self, payload: bytes) -> None:
        msg = decode(payload, Episode)
        with self._lock:
            self.hop.add_ns(msg.sent_ns)
            self.waiting.append(msg)
            self._write_ready()

    def add_captions(self, payload: bytes) -> None:
        msg = decode(payload, Captions)
        with self._lock:
            for step, tokens, lag, skipped in zip(msg.steps.tolist(), msg.tokens, msg.lags.tolist(),
                                                  msg.skipped.tolist()):
                for env, row in enumerate(tokens):
                    self.captions[(env, step)] = (row, lag, skipped)
                self.newest = step
            self._write_ready()

    def _write_ready(self, pad: bool = False) -> None:
        """Write the waiting episodes, oldest first, while each has all its captions (``pad``: all of them)."""
        while self.waiting:
            episode = self.waiting[0]
            keys = [(episode.env_index, int(s)) for s in episode.data["step"]]
            if self.caption_len:
                # captions come in step order: one missing below the newest was lost with a restart
                lost = self.newest > keys[-1][1]
                if not pad and not lost and not all(k in self.captions for k in keys):
                    return
                blank = (np.zeros(self.caption_len, np.int16), -1, False)
                self.captions_missing += sum(k not in self.captions for k in keys)
                tokens, lags, skipped = zip(*(self.captions.pop(k, blank) for k in keys))
                episode.data["caption"] = np.stack(tokens)
                if "caption_lag" in self.writer.specs:  # a store written before captions had a lag has none
                    episode.data["caption_lag"] = np.asarray(lags, np.int16)
                if "caption_skipped" in self.writer.specs:  # nor one written before frames were skipped
                    episode.data["caption_skipped"] = np.asarray(skipped, bool)
            if "env" in self.writer.specs:
                episode.data["env"] = np.full(len(keys), episode.env_index, np.int16)
            for key in ("step", "stopped"):
                if key not in self.writer.specs:  # a store written before rows had it
                    episode.data.pop(key)
            self.writer.add_episode(episode.data, task=episode.task)
            if self.viewer is not None:
                self.viewer.send({"env": episode.env_index, "task": episode.task, "data": episode.data})
            self.waiting.popleft()

    def stats(self) -> dict[str, Any]:
        return {"hop_env_recorder": self.hop.summary(), "episodes_committed": self.writer.n_episodes,
                "steps_committed": self.writer.n_steps, "store_bytes": self.writer.bytes_on_disk,
                "captions_missing": self.captions_missing,
                **({"channel_viewer": self.viewer.stats().to_dict()} if self.viewer is not None else {})}

    def close(self) -> dict[str, Any]:
        with self._lock:
            self._write_ready(pad=True)
            self.writer.close()
        if self.viewer is not None:
            self.viewer.drain()
        return self.stats()
