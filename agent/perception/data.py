"""Synthetic training frames generated in worker processes, so the GPU is not left waiting.

Each worker owns a slice of the persistent streams (``envs.synthetic.StreamBatch``) and keeps up to
``prefetch`` chunks ready; ``next`` gathers one chunk from every worker in a fixed order, so the
result is the same as one ``StreamBatch`` over all seeds, whatever the number of workers.
"""

from __future__ import annotations

import multiprocessing as mp
from collections.abc import Sequence

import numpy as np

from envs.synthetic import FrameTruth, SceneConfig, StreamBatch


def _worker(seeds: list[int], cfg: SceneConfig, n_frames: int, out: mp.Queue) -> None:
    batch = StreamBatch(seeds, cfg)
    while True:
        out.put(batch.next(n_frames))


class ParallelStreams:
    """``StreamBatch(seeds).next(n_frames)`` chunks, computed ahead by ``workers`` processes."""

    def __init__(self, seeds: Sequence[int], cfg: SceneConfig, n_frames: int, workers: int,
                 prefetch: int = 4) -> None:
        workers = max(1, min(workers, len(seeds)))
        ctx = mp.get_context("fork")  # before CUDA is initialised: the trainer creates this first
        slices = np.array_split(np.asarray(seeds), workers)
        self.queues = [ctx.Queue(maxsize=prefetch) for _ in slices]
        self.procs = [ctx.Process(target=_worker, args=(s.tolist(), cfg, n_frames, q), daemon=True)
                      for s, q in zip(slices, self.queues)]
        for p in self.procs:
            p.start()

    def next(self) -> tuple[np.ndarray, list[list[FrameTruth]]]:
        parts = [q.get(timeout=120) for q in self.queues]
        return np.concatenate([f for f, _ in parts]), [t for _, truths in parts for t in truths]

    def close(self) -> None:
        for p in self.procs:
            p.terminate()
            p.join(timeout=5)
