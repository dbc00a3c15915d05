"""Training frames for the captioner — the synthetic scenes, captioned env renders, or a folder of
captioned video clips (``envs/clips.py``) — generated in worker processes, so the GPU is not left
waiting.

A data source is a string: ``synthetic``, ``env:ID``, or anything else as a directory of clips.
``open_batch(data, seeds, frame_size)`` makes a batch of persistent streams whose ``next(n)`` gives
frames (B, n, S, S, 3) and per-stream truths (each with ``.caption`` and ``.is_last``).
``ParallelStreams`` runs slices of those streams in worker processes and keeps up to ``prefetch``
chunks ready; ``next`` gathers one chunk from every worker in a fixed order, so the result is the same
as one batch over all seeds, whatever the number of workers. Workers write frames straight into
shared memory (only the truths are pickled): at 32 streams × 32 frames of 64×64 a chunk is 12.6 MB,
which through pipes cost the trainer 42-130 ms a step to take, against 2-6 ms from shared memory on the
2-core machine (benchmarks/parallel_streams.py).
"""

from __future__ import annotations

import itertools
import mmap
import multiprocessing as mp
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agent.perception.camera import CameraConfig, CameraStreams
from agent.processes import die_with_parent
from envs.clips import ClipBatch, clip_grammar, heldout_dir
from envs.env_captions import EnvCaptionBatch, env_grammar
from envs.synthetic import SceneConfig, StreamBatch, all_captions


def is_clips(data: str) -> bool:
    """Whether ``data`` names a directory of captioned clips (neither ``synthetic`` nor ``env:ID``)."""
    return data != "synthetic" and not data.startswith("env:")


def grammar(data: str) -> list[str]:
    """Every caption of a data source: ``synthetic``, ``env:ID`` or a directory of clips."""
    if data == "synthetic":
        return all_captions()
    if data.startswith("env:"):
        return list(env_grammar(data.removeprefix("env:")))
    return clip_grammar(Path(data))


def eval_data(data: str) -> str:
    """Where a model trained on ``data`` is scored: ``DIR/heldout`` for a directory of clips that has
    one, else ``data`` itself (fresh streams of generated sources; other plays of the same clips)."""
    held = heldout_dir(Path(data)) if is_clips(data) else None
    return str(held) if held is not None else data


def open_batch(data: str, seeds: Sequence[int], frame_size: int, camera: CameraConfig | None = None,
               play: str = "mixed") -> Any:
    """Persistent streams of ``data`` (``synthetic``, ``env:ID`` or a directory of clips), one per seed;
    ``camera``: as such a busy live camera delivers them (skips, repeats, JPEG, light, noise); ``play``:
    how an env's episodes are played (`EnvCaptionBatch`)."""
    if camera is not None:
        return CameraStreams([open_batch(data, [s], frame_size, play=play) for s in seeds], int(seeds[0]) + 1, camera)
    if data == "synthetic":
        return StreamBatch(seeds, SceneConfig(frame_size=frame_size))
    if data.startswith("env:"):
        return EnvCaptionBatch(data.removeprefix("env:"), seeds, frame_size, play)
    return ClipBatch(Path(data), seeds, frame_size)


def _worker(data: str, seeds: list[int], frame_size: int, n_frames: int, camera: CameraConfig | None,
            slots: np.ndarray, rows: slice, free: Any, out: mp.Queue) -> None:
    """Fill this worker's rows of the shared slots in turn, each once the trainer has let it go (the
    next chunk is made while waiting for that)."""
    die_with_parent()
    batch = open_batch(data, seeds, frame_size, camera)
    for chunk in itertools.count():
        frames, truths = batch.next(n_frames)
        free.acquire()
        slots[chunk % len(slots), rows] = frames
        out.put(truths)


class ParallelStreams:
    """``open_batch(data, seeds).next(n_frames)`` chunks, computed ahead by ``workers`` processes into
    ``prefetch`` shared-memory slots."""

    def __init__(self, data: str, seeds: Sequence[int], frame_size: int, n_frames: int, workers: int,
                 prefetch: int = 4, camera: CameraConfig | None = None) -> None:
        self.n_frames, self.chunk = n_frames, 0
        workers = max(1, min(workers, len(seeds)))
        ctx = mp.get_context("fork")  # before CUDA is initialised: the trainer creates this first
        shape = (prefetch, len(seeds), n_frames, frame_size, frame_size, 3)
        self.slots = np.frombuffer(mmap.mmap(-1, int(np.prod(shape))), dtype=np.uint8).reshape(shape)  # shared on fork
        slices = np.array_split(np.asarray(seeds), workers)
        bounds = np.cumsum([0] + [len(s) for s in slices])
        self.free = [ctx.Semaphore(prefetch) for _ in slices]
        self.queues = [ctx.Queue() for _ in slices]
        self.procs = [ctx.Process(target=_worker, args=(data, s.tolist(), frame_size, n_frames, camera, self.slots,
                                                        slice(lo, hi), free, q), daemon=True)
                      for s, lo, hi, free, q in zip(slices, bounds[:-1], bounds[1:], self.free, self.queues)]
        for p in self.procs:
            p.start()

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[Any]]]:
        """The next ``n_frames`` of every stream (the chunk length the workers were started with). The
        frames are a view into shared memory, valid until the next call: copy what must outlive it."""
        if n_frames != self.n_frames:
            raise ValueError(f"these workers make chunks of {self.n_frames} frames, not {n_frames}")
        if self.chunk > 0:  # the caller is done with the previous chunk's slot
            for free in self.free:
                free.release()
        truths = [t for q in self.queues for t in q.get(timeout=120)]
        frames = self.slots[self.chunk % len(self.slots)]
        self.chunk += 1
        return frames, truths

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            p.join(timeout=5)
