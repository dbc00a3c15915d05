"""A one-way channel between two processes on one node over a named pipe, for traffic beside the ring.

An :class:`~agent.outbox.Outbox` sends each message as a Ray actor call: on a 2-core machine, the
sender's share of that call (serialising, the call's bookkeeping, reaping the replies) and the
receiver's (a task on its main thread) take cores the hot ring needs. Here the receiver makes a FIFO
and reads it on a thread of its own (:class:`PipeInbox`), and the sender writes each message into the
pipe (:class:`PipeOutbox`): one copy each way, no call. A write waits only while the pipe is full
(backpressure, with a timeout that reports a stalled receiver); a receiver whose process died shows
as :class:`~agent.pipes.PeerClosed` at the next write. Frames are those of ``agent/pipes.py``.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

from agent.channels import ChannelStats, ChannelTimeout
from agent.pipes import DATA, PeerClosed, open_reader, open_writer, read_frame, write_frame

PIPE_BYTES = 1 << 18  # room for a few steps' frames, so a send rarely waits for the reader to wake


class PipeInbox:
    """The receiving end: a FIFO in a folder of its own (``path``) and a thread that calls ``handle``
    on every message, in order. ``wait_for(n)`` returns once ``n`` messages have been handled."""

    def __init__(self, name: str, handle: Callable[[bytes], None]) -> None:
        self.name, self._handle = name, handle
        self._dir = Path(tempfile.mkdtemp(prefix="thalamus-pipe-"))
        self.path = str(self._dir / "messages")
        os.mkfifo(self.path)
        self.received = 0
        self._error: BaseException | None = None
        self._closed = False
        self._cond = threading.Condition()
        self._fd = open_reader(self.path)
        try:
            fcntl.fcntl(self._fd, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        except (AttributeError, OSError):  # not Linux, or over /proc/sys/fs/pipe-max-size: the default works too
            pass
        self._thread = threading.Thread(target=self._loop, name=f"pipe:{name}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while True:
                kind, msg = read_frame(self._fd)
                if kind == DATA:
                    self._handle(msg)
                with self._cond:
                    self.received += 1
                    self._cond.notify_all()
        except PeerClosed:  # the sender closed its end (or its process died)
            pass
        except BaseException as exc:  # reported to whoever waits for the messages
            self._error = exc
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def wait_for(self, n: int, timeout_s: float) -> None:
        """Until ``n`` messages have been handled: ChannelTimeout after ``timeout_s``; a handler's
        error (or a sender that closed before sending them) raised here."""
        with self._cond:
            if not self._cond.wait_for(lambda: self.received >= n or self._error is not None or self._closed,
                                       timeout_s):
                raise ChannelTimeout(f"{self.name}: {self.received} of {n} messages arrived in {timeout_s:.0f} s")
            if self._error is not None:
                raise RuntimeError(f"{self.name}: {type(self._error).__name__}: {self._error}")
            if self.received < n:
                raise PeerClosed(f"{self.name}: the sender closed after {self.received} of {n} messages")

    def close(self) -> None:
        """Remove the FIFO; the thread ends when the sender closes its end."""
        shutil.rmtree(self._dir, ignore_errors=True)


class PipeOutbox:
    """The sending end of ``path`` (a :class:`PipeInbox`'s), with an Outbox's ``send``/``drain``/``stats``.
    ``confirm(n)`` returns once the receiver has handled ``n`` messages (a call to the receiver)."""

    def __init__(self, name: str, path: str, confirm: Callable[[int], None], timeout_s: float = 60.0) -> None:
        self.name, self.timeout_s, self._confirm = name, timeout_s, confirm
        self._fd: int | None = open_writer(path, timeout_s)
        self._sent = self._lost = 0

    def send(self, payload: bytes) -> None:
        """Write one message; waits while the pipe is full. PeerClosed (the message counted lost) if
        the receiver's process has gone."""
        if self._fd is None:
            raise PeerClosed(f"{self.name}: closed")
        try:
            write_frame(self._fd, payload, timeout_s=self.timeout_s)
        except PeerClosed:
            self._lost += 1
            self.close()
            raise
        self._sent += 1

    def drain(self) -> None:
        """Wait until the receiver has handled every message sent so far."""
        self._confirm(self._sent)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def stats(self) -> ChannelStats:
        """Sent messages count as got once written: the pipe holds them for the receiver."""
        return ChannelStats(self.name, "block", PIPE_BYTES, self._sent + self._lost, self._sent, 0, self._lost)
