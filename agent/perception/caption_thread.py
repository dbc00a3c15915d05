"""Captions off the acting path: each step's frames are captioned on a thread of their own.

``CaptionThread`` takes each step's frames (``submit``) and captions them on its thread, every step
waiting at that moment in one call (consecutive frames of each stream), so a thread that falls behind
catches up with fewer, larger calls. Each step's captions are delivered in step order with their lag:
how many newer steps had been submitted when they were ready (0: before the next step's frames came).

With ``max_gap`` > 1 (a captioner that reads frame timing, allowed to skip) a thread that falls
behind captions every k-th waiting step (k up to ``max_gap``, the newest always), telling the
captioner each frame's gap, as a live camera on a busy machine delivers frames; a step it skipped
gets the caption of the next frame it read, marked skipped. ``submit`` waits while ``max_pending``
steps wait, so the lag is bounded. With ``idle`` the thread runs only on time the machine's other
threads leave (Linux's SCHED_IDLE): on a CPU of few cores, acting is never preempted by a caption. If
other work keeps the cores busy, that time never comes: once a submit has waited ``STARVED_S``, a
thread at normal priority takes over the captioning for the rest of the run (a thread cannot raise
its own priority back without privileges, but a new one starts at its maker's).
"""

from __future__ import annotations

import math
import os
import threading
from collections import Counter
from collections.abc import Callable

import numpy as np

CAPTIONS_PER_CALL = 2  # steps a call reads before a thread that fell behind starts skipping
STARVED_S = 0.25  # a submit waiting this long on an idle-priority thread: other work holds the cores


def _lowest_priority(thread_id: int) -> bool:
    """Put one thread on SCHED_IDLE (Linux: it runs when no other thread wants the core); False where
    that is not possible."""
    if not hasattr(os, "SCHED_IDLE"):
        return False
    try:
        os.sched_setscheduler(thread_id, os.SCHED_IDLE, os.sched_param(0))
    except OSError:
        return False
    return True


class CaptionThread:
    """Captions the frames ``[N, ...]`` submitted per step: ``caption(frames [T, N, ...], gaps [T])``
    gives the tokens ``[T, N, L]`` of T steps (``gaps``: steps since each one's captioned predecessor),
    ``deliver(step, tokens [N, L], lag, skipped)`` gets each step's."""

    def __init__(self, caption: Callable[[np.ndarray, np.ndarray], np.ndarray],
                 deliver: Callable[[int, np.ndarray, int, bool], None], max_pending: int = 8,
                 max_gap: int = 1, delivered: Callable[[], None] | None = None, idle: bool = False) -> None:
        """``max_pending``: steps that may wait (past that ``submit`` waits); ``max_gap``: the largest
        gap between read frames (1: every frame is captioned); ``delivered``: called after each call's
        steps were delivered (a receiver may send them on together); ``idle``: caption at the lowest
        CPU priority where the OS has one (SCHED_IDLE)."""
        self._caption, self._deliver, self._delivered = caption, deliver, delivered
        self.max_pending, self.max_gap = max_pending, max(1, max_gap)
        self._pending: list[tuple[int, np.ndarray]] = []
        self._busy = self._closed = False
        self._error: BaseException | None = None
        self._newest = -1
        self._captioned = -1  # the step the newest caption was made from
        self._cond = threading.Condition()
        self.latest: np.ndarray | None = None  # the newest captioned step's tokens [N, L]
        self.lags: Counter[int] = Counter()  # lag in steps → how many steps had it
        self.calls = 0  # captioning calls run (each over one or more steps)
        self.skipped = 0  # steps delivered with a later frame's caption
        self.starved_at: int | None = None  # the step at which an idle thread handed over (starved)
        self._start()
        self.idle = idle and _lowest_priority(self._thread.native_id)

    def _start(self) -> None:
        """A new captioning thread; the one before, if any, ends after its call (``_call``)."""
        self._thread = threading.Thread(target=self._loop, name="captions", daemon=True)
        self._thread.start()

    def submit(self, step: int, frames: np.ndarray) -> None:
        """Queue one step's frames [N, ...]; returns at once unless ``max_pending`` steps wait."""
        def room() -> bool:
            return len(self._pending) < self.max_pending or self._error is not None

        with self._cond:
            self._raise()
            if not self._cond.wait_for(room, STARVED_S if self.idle else None):
                self._hand_over(step)
                self._cond.wait_for(room)
            self._raise()
            self._pending.append((step, frames))
            self._newest = step
            self._cond.notify_all()

    def _hand_over(self, step: int) -> None:
        """A thread at this one's (normal) priority captions from now on; the idle one ends after
        its call. Called holding ``_cond``."""
        self.idle, self.starved_at = False, step
        self._start()
        self._cond.notify_all()

    def drain(self) -> None:
        """Wait until every submitted step has been captioned and delivered."""
        with self._cond:
            self._cond.wait_for(lambda: (not self._pending and not self._busy) or self._error is not None)
            self._raise()

    def close(self) -> None:
        """Caption what is waiting, then end the thread."""
        self.drain()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()

    def lag_summary(self) -> dict[str, float]:
        """``{"p50", "p99", "max", "count"}`` of the lags, in steps (NaN before any)."""
        count = sum(self.lags.values())
        if not count:
            return {"p50": float("nan"), "p99": float("nan"), "max": float("nan"), "count": 0}
        values = sorted(self.lags)
        cumulative = np.cumsum([self.lags[v] for v in values]) / count
        p50, p99 = (float(values[int(np.searchsorted(cumulative, q))]) for q in (0.5, 0.99))
        return {"p50": p50, "p99": p99, "max": float(values[-1]), "count": count}

    def _raise(self) -> None:
        if self._error is not None:
            raise RuntimeError(f"captioning failed: {type(self._error).__name__}: {self._error}")

    def _chosen(self, batch: list[tuple[int, np.ndarray]]) -> list[int]:
        """Indices of the batch's steps to caption: the newest and every k-th before it (k grows
        with the backlog, up to ``max_gap``)."""
        stride = min(self.max_gap, math.ceil(len(batch) / CAPTIONS_PER_CALL))
        return list(range(len(batch) - 1, -1, -stride))[::-1]

    def _loop(self) -> None:
        me = threading.current_thread()
        while self._call(me):
            pass

    def _call(self, me: threading.Thread) -> bool:
        """Caption the steps waiting (waits for some); False once this thread was replaced, or closed
        with nothing waiting. One call at a time (``_busy``): a thread that takes over waits for the
        call in flight, so captions stay in order."""
        with self._cond:
            self._cond.wait_for(lambda: ((self._pending or self._closed) and not self._busy)
                                or self._thread is not me)
            if self._thread is not me or not self._pending:
                return False
            batch, self._pending, self._busy = self._pending, [], True
            self._cond.notify_all()
        try:
            chosen = self._chosen(batch)
            steps = [batch[i][0] for i in chosen]
            previous = [self._captioned if self._captioned >= 0 else steps[0] - 1, *steps[:-1]]
            tokens = self._caption(np.stack([batch[i][1] for i in chosen]),
                                   np.subtract(steps, previous))
            self._captioned = steps[-1]
            source = np.searchsorted(chosen, np.arange(len(batch)))  # each step's next captioned frame
            for (step, _), j in zip(batch, source):
                lag, skipped = self._newest - step, steps[j] != step
                self._deliver(step, tokens[j], lag, skipped)
                self.lags[lag] += 1
                self.skipped += skipped
            if self._delivered is not None:
                self._delivered()
            self.latest = tokens[-1]
            self.calls += 1
        except Exception as exc:  # reported to the acting thread at its next submit or drain
            self._error = exc
        with self._cond:
            self._busy = False
            self._cond.notify_all()
        return True
