"""What receiving one training chunk costs the captioner's trainer: frames through shared memory
(`ParallelStreams`) against the same frames pickled through a pipe (how it received them before).

    python -P benchmarks/parallel_streams.py

32 streams × 32 frames of 64×64 (`thalamus train captioner`'s chunk, 12.6 MB), two workers. The
workers are given time to fill every slot first, so this is the trainer's own cost of taking a chunk
that is ready, not how fast frames are made. The pipe baseline sends one worker's ready chunk over a
`multiprocessing.Queue` and joins the parts, as the trainer did, in the same run.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.perception.data import ParallelStreams, open_batch  # noqa: E402

STREAMS, FRAMES, SIZE, WORKERS, TAKES = 32, 32, 64, 2, 3


def _pipe_worker(out: mp.Queue) -> None:
    batch = open_batch("synthetic", list(range(STREAMS // WORKERS)), SIZE)
    for _ in range(TAKES + 1):
        out.put(batch.next(FRAMES))


def through_pipes() -> list[float]:
    ctx = mp.get_context("fork")
    queues = [ctx.Queue() for _ in range(WORKERS)]
    procs = [ctx.Process(target=_pipe_worker, args=(q,), daemon=True) for q in queues]
    for p in procs:
        p.start()
    time.sleep(20)  # every chunk made and waiting in the pipes
    ms = []
    for _ in range(TAKES):
        start = time.perf_counter()
        parts = [q.get() for q in queues]
        np.concatenate([f for f, _ in parts]), [t for _, truths in parts for t in truths]
        ms.append((time.perf_counter() - start) * 1e3)
    for p in procs:
        p.terminate()
    return ms


def through_shared_memory() -> list[float]:
    streams = ParallelStreams("synthetic", list(range(STREAMS)), SIZE, FRAMES, WORKERS, prefetch=TAKES + 1)
    time.sleep(20)  # every slot filled
    ms = []
    for _ in range(TAKES):
        start = time.perf_counter()
        streams.next(FRAMES)
        ms.append((time.perf_counter() - start) * 1e3)
    streams.close()
    return ms


def main() -> None:
    pipe, shared = through_pipes(), through_shared_memory()
    print(f"taking a ready chunk of {STREAMS}x{FRAMES} frames of {SIZE}x{SIZE}: through pipes "
          + ", ".join(f"{x:.1f}" for x in pipe) + " ms; through shared memory "
          + ", ".join(f"{x:.1f}" for x in shared) + f" ms; ratio of medians "
          f"{sorted(pipe)[TAKES // 2] / sorted(shared)[TAKES // 2]:.1f}x")


if __name__ == "__main__":
    main()
