"""Where a stopped run goes on from: what its store committed, and its newest checkpoint.

``thalamus run --resume RUN_DIR`` continues a run that was interrupted, failed or killed. The store
is the record: every committed episode is kept as it is, and stepping goes on from the number of
steps it holds (steps of episodes still open when the run stopped were never committed, so they are
taken again). The models go on from the newest file in ``RUN_DIR/checkpoints`` (``latest.pt`` is
saved every ``AgentConfig.checkpoint_every_s``; ``task_<i>.pt`` at task boundaries; ``final.pt`` at
the end); trc's cache and spectral memories come back from the store by themselves.
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memory import StoreBusy, open_store
from memory.layout import EPISODES, STORE_DIR

CHECKPOINTS = "checkpoints"


@dataclass(frozen=True)
class ResumePoint:
    """What a stopped run had committed, and the checkpoint its models go on from."""

    steps: int  # steps committed to the store, over all tasks
    episodes: int  # episodes committed
    task: int  # the task of the sequence to go on in (0 without a sequence)
    task_steps: int  # steps of ``task`` already committed
    checkpoint: Path | None  # the newest checkpoint; None if the run stopped before its first
    started: float  # when the run first started (s since the epoch): the store's ``time`` counts from it


def has_episodes(run_dir: Path) -> bool:
    """Whether the run's store has its episode arrays (a run killed at start-up may have none)."""
    return (run_dir / STORE_DIR / EPISODES).is_dir()


def resume_point(run_dir: Path, started: float, steps_per_task: int | None = None,
                 wait_s: float = 15.0) -> ResumePoint:
    """Repair the store (a killed writer's half-written flush is cut off), read what it committed and
    find the newest checkpoint. Waits up to ``wait_s`` for the store's writer lock, which a killed
    run's recorder may hold while it exits; StoreBusy after that (the run is still going)."""
    steps = episodes = task = task_steps = 0
    if has_episodes(run_dir):
        deadline = time.monotonic() + wait_s
        while True:
            try:
                open_store(run_dir, mode="a").close()
                break
            except StoreBusy:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        store = open_store(run_dir)
        tasks, lengths = store.episode_tasks, store.episode_lengths
        steps, episodes = store.n_steps, store.n_episodes
        if len(tasks):
            task = int(tasks.max())
            task_steps = int(lengths[tasks == task].sum())
    if steps_per_task is not None and task_steps >= steps_per_task:
        task, task_steps = task + 1, 0
    return ResumePoint(steps, episodes, task, task_steps, newest_checkpoint(run_dir), started)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The most recently written ``checkpoints/*.pt`` of a run (None if there is none)."""
    files = [p for p in (run_dir / CHECKPOINTS).glob("*.pt") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill leaves the old file or
    the new one, never a torn one (resume reads the newest)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A checkpoint this runtime saved (it holds numpy arrays as well as tensors, so not weights-only)."""
    return torch.load(path, map_location="cpu", weights_only=False)
