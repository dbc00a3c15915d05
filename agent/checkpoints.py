"""Checkpoints of a run, and where a stopped run goes on from.

A checkpoint is one moment of the run: perception, policy (weights, optimizer, update count) and
learner (weights, optimizer and its cache and spectral memories), taken while the ring is held
between two steps, written to a temporary file and renamed into place — the rename is its one
commit record, so a reader finds the old file or the new one, never a torn or mixed one. Files hold
tensors, numbers, strings and plain containers only, and are read with ``weights_only=True``: a
file that needs more (that could run code when loaded) is refused.

``thalamus run --resume RUN_DIR`` continues a run that was interrupted, failed or killed. The store
is the record: every committed episode is kept as it is, and stepping goes on from the number of
steps it holds (steps of episodes still open when the run stopped were never committed, so they are
taken again). The models go on from the newest checkpoint (``latest.pt`` every
``AgentConfig.checkpoint_every_s``; ``task_<i>.pt`` at task boundaries; ``final.pt`` at the end).
"""

from __future__ import annotations

import errno
import os
import pickle
import shutil
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from memory import StoreBusy, open_store
from memory.layout import has_episodes

CHECKPOINTS = "checkpoints"


class CheckpointError(ValueError):
    """A file is not a checkpoint this runtime can load safely; the message says which and why."""


def save_tensors(path: Path, state: dict[str, Any]) -> None:
    """``torch.save`` to a temporary file beside ``path``, then rename: a kill leaves the old file or
    the new one, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    except RuntimeError as exc:  # torch's writer reports a full disk as a short write
        tmp.unlink(missing_ok=True)
        if shutil.disk_usage(path.parent).free < 2**20:
            raise OSError(errno.ENOSPC, "No space left on device", str(path)) from None
        raise exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def load_tensors(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """What :func:`save_tensors` wrote, loaded as tensors and plain data only; CheckpointError (one
    line) for a file that is not one, or that holds objects which would run code when loaded."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "Unsupported global" in str(exc) or "Unsupported operand" in str(exc):
            raise CheckpointError(f"{path} holds more than tensors and plain data (loading it could run code); "
                                  "refusing it — use a checkpoint thalamus wrote") from None
        raise CheckpointError(f"{path} is not a readable checkpoint (UnpicklingError)") from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path} is not a readable checkpoint ({type(exc).__name__})") from None


@dataclass(frozen=True)
class ResumePoint:
    """What a stopped run had committed, and the checkpoint its models go on from."""

    steps: int  # steps committed to the store, over all tasks
    episodes: int  # complete episodes committed (those a stop cut short are not counted)
    returns: list[float]  # returns of the run's last 20 complete episodes (of the resume task)
    task: int  # the task of the sequence to go on in (0 without a sequence)
    task_steps: int  # steps of ``task`` already committed
    checkpoint: Path | None  # the newest checkpoint; None if the run stopped before its first
    started: float  # when the run first started (s since the epoch): the store's ``time`` counts from it


def _wait_for_writer(run_dir: Path, wait_s: float) -> None:
    """Open the store for appending once (which repairs a killed writer's half-written flush),
    waiting up to ``wait_s`` for a writer lock that a killed run's recorder may still hold."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            open_store(run_dir, mode="a").close()
            return
        except StoreBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def resume_point(run_dir: Path, started: float, steps_per_task: int | None = None,
                 wait_s: float = 15.0) -> ResumePoint:
    """Repair the store, read what it committed and find the newest checkpoint; StoreBusy if the
    run is still being written after ``wait_s``."""
    steps = episodes = task = task_steps = 0
    returns: list[float] = []
    if has_episodes(run_dir):
        _wait_for_writer(run_dir, wait_s)
        store = open_store(run_dir)
        tasks, lengths = store.episode_tasks, store.episode_lengths
        steps = store.n_steps
        if len(tasks):
            task = int(tasks.max())
            task_steps = int(lengths[tasks == task].sum())
        complete = store.episode_complete
        episodes = int(complete.sum())
        returns = [float(r) for r in store.episode_returns()[complete & (tasks == task)][-20:]]
    if steps_per_task is not None and task_steps >= steps_per_task:
        task, task_steps, returns = task + 1, 0, []
    return ResumePoint(steps, episodes, returns, task, task_steps, newest_checkpoint(run_dir), started)


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The most recently written ``checkpoints/*.pt`` of a run (None if there is none)."""
    files = [p for p in (run_dir / CHECKPOINTS).glob("*.pt") if p.is_file()]
    return max(files, key=lambda p: p.stat().st_mtime_ns) if files else None
