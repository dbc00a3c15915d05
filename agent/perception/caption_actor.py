"""CaptionActor: every env's frames in, each frame's caption out to the recorder, off the hot ring.

Perception sends each observation batch's frames here and goes on: the percept the policy acts on
never waits for a caption. On one node the frames come through a named pipe (``open_frames_pipe``:
no actor call a step, whose cost on a few cores came out of acting), elsewhere as actor calls
(``add``). A thread (``caption_thread.py``) captions the steps waiting, all of them in one call of
consecutive frames per env stream (one streaming state per env, never reset, as in training), and
sends them to the recorder keyed by (env, step) with their lag. Its own process, so on
a machine of a few cores captioning runs beside the ring instead of taking turns with it; on a CPU
the captioning thread runs at the lowest priority (SCHED_IDLE), on the time acting leaves.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from agent.messages import CaptionFrames, Captions, decode, encode
from agent.outbox import Outbox
from agent.perception.caption_thread import CaptionThread
from agent.pipe_channel import PipeInbox

MAX_PENDING_STEPS = 8  # steps waiting to be captioned before perception's sends wait (bounds the lag)
COMPILE_MIN_STEPS = 200_000  # a CPU run this long wins back the seconds compiling the captioner takes (BENCHMARKS.md)


class CaptionActor:
    """Holds a ``LiveCaptioner`` of ``num_envs`` streams and the thread that runs it."""

    def __init__(self, checkpoint: str, num_envs: int, device: str = "cpu", recorder: Any = None,
                 skip: int = 0, compile: bool = False) -> None:
        """``recorder``: the RecorderActor (or its Ray name: a restarted captioner finds it again) that
        gets each step's captions, blocking when 16 sends are in flight; None: captions are only shown.
        ``skip``: frames in a row it may skip when behind (at most the captioner's timing allows: the
        CLI checks). ``compile``: on a CPU, caption through one compiled function a frame (seconds to
        build; 1.5–2.3× cheaper a frame: BENCHMARKS.md)."""
        torch.set_num_threads(1)
        from agent.perception.live import LiveCaptioner, cpu_has_bf16  # imports triton: only when captioning

        # captions only (no policy reads these features): the encoder in bf16 where the CPU has it
        self.captioner = LiveCaptioner(Path(checkpoint), streams=num_envs, device=device,
                                       cpu_bf16=device == "cpu" and cpu_has_bf16())
        if device == "cuda":  # the kernels compile now, not while acting waits on a full queue
            self.captioner.warm_up(MAX_PENDING_STEPS)
        elif compile:  # on a few cores the captioner is what holds acting back
            self.captioner.compile()
        self.num_envs = num_envs
        if isinstance(recorder, str):
            recorder = ray.get_actor(recorder)
        self.recorder = Outbox("captioner→recorder", recorder, "add_captions", window=16) if recorder else None
        self._ready: list[tuple[int, np.ndarray, int, bool]] = []  # a call's captions, sent together
        self.thread = CaptionThread(self.captioner.caption_steps, self._deliver, MAX_PENDING_STEPS, skip + 1,
                                    self._send, idle=device == "cpu")  # on a CPU, acting first
        self.inbox: PipeInbox | None = None

    def open_frames_pipe(self) -> str:
        """A named pipe (its path) whose messages are :meth:`add`'s, read on a thread of this actor:
        a sender on this node writes frames there instead of calling ``add``."""
        if self.inbox is not None:
            self.inbox.close()
        self.inbox = PipeInbox("perception→captioner", self.add)
        return self.inbox.path

    def frames_received(self, n: int, timeout_s: float = 60.0) -> None:
        """Return once ``n`` messages have come through the frames pipe."""
        assert self.inbox is not None, "no frames pipe is open"
        self.inbox.wait_for(n, timeout_s)

    def add(self, msg: bytes) -> None:
        """One step's frames (a :class:`CaptionFrames`); waits only while the thread is full."""
        frames = decode(msg, CaptionFrames)
        self.thread.submit(frames.step, frames.frames)

    def _deliver(self, step: int, tokens: np.ndarray, lag: int, skipped: bool) -> None:
        if self.recorder is not None:
            self._ready.append((step, tokens, lag, skipped))

    def _send(self) -> None:
        """One message for a call's steps: an actor call per step cost the captioning thread ~14% of
        its time on a 2-core machine (py-spy of `thalamus run`)."""
        if self.recorder is not None and self._ready:
            steps, tokens, lags, skipped = zip(*self._ready)
            self._ready = []
            self.recorder.send(encode(Captions(steps=np.asarray(steps, np.int64), tokens=np.stack(tokens),
                                               lags=np.asarray(lags, np.int64), skipped=np.asarray(skipped, bool))))

    def caption_now(self, env: int = 0) -> str | None:
        """The caption of ``env``'s latest captioned frame (None before the first)."""
        latest = self.thread.latest
        return None if latest is None else self.captioner.text(latest[env])

    def flush(self) -> None:
        """Wait until every frame added so far has its caption at the recorder."""
        self.thread.drain()
        if self.recorder is not None:
            self.recorder.drain()

    def stats(self) -> dict[str, Any]:
        """The recorder channel, the captions' lag behind their frames (in steps), how many calls
        captioned them (fewer than steps: the thread caught up in batches), and the step from which
        captioning ran at normal priority because other work kept the cores busy (None: never)."""
        return {"channel_recorder": self.recorder.stats().to_dict() if self.recorder else None,
                "caption_lag_steps": self.thread.lag_summary(), "caption_calls": self.thread.calls,
                "captions_skipped": self.thread.skipped * self.num_envs,  # env steps, as the run counts them
                "caption_idle_until": self.thread.starved_at}  # the vector step other work took the cores at
