"""The hot path's transport between actors on one node: named pipes (FIFOs) between loop threads.

    head ─p0─▶ stage 0 ─p1─▶ stage 1 ─p2─▶ … ─pN─▶ head     (the EnvActor; perception, policy)

Whoever holds the stages lays the pipes and starts the stages (:func:`lay_pipes`: the driver); the
head joins the laid ring by its folder (:class:`PipeRing`), holding no handle to any stage.

Each stage runs one method of an actor on a thread of that actor: read a message, call the method,
write its result on. A reader sleeps in the kernel until its message arrives and is woken at once,
so a hop costs tens of microseconds and an idle agent no CPU. (Ray Compiled Graphs' shared-memory
channels busy-poll: every actor in the graph, and its driver, spins a core while it waits; on a
2-core machine that puts scheduler delays of several ms into the tail of every hop.)

A frame is an 8-byte little-endian length, one kind byte and the payload; a method that raises
sends an error frame on instead of a result. A stage whose process dies closes its pipe ends: the
stages after it see end-of-file and close theirs in turn, so the ring's head learns of it as
:class:`PeerClosed`; a stalled stage shows as :class:`ChannelTimeout`. Closing the head's end
stops every stage.
"""

from __future__ import annotations

import errno
import os
import select
import shutil
import struct
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from agent.channels import ChannelTimeout

_HEAD = struct.Struct("<QB")  # payload length, kind
DATA, ERROR = 0, 1


class PeerClosed(ConnectionError):
    """The process at the other end of a pipe closed it: it died, or its upstream did."""


class StageFailed(RuntimeError):
    """A stage's method raised; the message is its ``Type: message`` line."""


def _ready(fd: int, event: int, timeout_s: float | None) -> bool:
    """Wait for ``event`` on ``fd`` (or its peer closing) for at most ``timeout_s`` (None: forever);
    ``poll``, not ``select``, since a Ray worker's descriptors may pass select's limit of 1024."""
    waiter = select.poll()
    waiter.register(fd, event)
    return bool(waiter.poll(None if timeout_s is None else timeout_s * 1000))


def open_reader(path: str) -> int:
    """Open the read end without waiting for a writer. It stays non-blocking: :func:`read_frame`
    waits in ``poll``, which reports nothing until a writer has connected and sent, or closed."""
    return os.open(path, os.O_RDONLY | os.O_NONBLOCK)


def open_writer(path: str, timeout_s: float) -> int:
    """Open the write end once its reader has opened the other end (ChannelTimeout after ``timeout_s``).
    It stays non-blocking: :func:`write_frame` waits in ``poll`` while the pipe is full."""
    deadline, pause = time.monotonic() + timeout_s, 0.001
    while True:
        try:
            return os.open(path, os.O_WRONLY | os.O_NONBLOCK)
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # ENXIO: no reader yet
                raise
            if time.monotonic() > deadline:
                raise ChannelTimeout(f"no reader opened {path} within {timeout_s:.0f} s") from None
            time.sleep(pause)  # a reader still starting (seconds, importing torch) is not polled 1000 times a second
            pause = min(2 * pause, 0.05)


def write_frame(fd: int, payload: bytes, kind: int = DATA, timeout_s: float | None = None) -> None:
    """Send one frame, waiting at most ``timeout_s`` (None: forever) each time the pipe is full;
    PeerClosed if the reader has gone."""
    for part in (_HEAD.pack(len(payload), kind), payload):
        data = memoryview(part)
        while data:
            try:
                data = data[os.write(fd, data):]
            except BlockingIOError:
                if not _ready(fd, select.POLLOUT, timeout_s):
                    raise ChannelTimeout(f"the next stage took no message for {timeout_s:.0f} s: "
                                         "it has stalled") from None
            except BrokenPipeError:
                raise PeerClosed("the next stage closed its pipe") from None


def _read_exactly(fd: int, n: int, timeout_s: float | None) -> bytearray:
    buf = bytearray(n)
    view, got = memoryview(buf), 0
    while got < n:
        if not _ready(fd, select.POLLIN, timeout_s):
            raise ChannelTimeout(f"no message for {timeout_s:.0f} s: a stage on the hot path has stalled")
        try:
            k = os.readv(fd, [view[got:]])
        except BlockingIOError:
            continue
        if k == 0:
            raise PeerClosed("the previous stage closed its pipe")
        got += k
    return buf


def read_frame(fd: int, timeout_s: float | None = None) -> tuple[int, bytes]:
    """``(kind, payload)`` of the next frame; waits at most ``timeout_s`` for each part (None: forever)."""
    length, kind = _HEAD.unpack(_read_exactly(fd, _HEAD.size, timeout_s))
    return kind, bytes(_read_exactly(fd, length, timeout_s))


def serve(method: Callable[[bytes], bytes], inp: str, out: str, timeout_s: float) -> threading.Thread:
    """Run ``method`` on every frame from pipe ``inp``, results to pipe ``out``, on a new thread of
    the calling actor; the thread ends when the upstream closes ``inp`` or the downstream ``out``."""

    def loop() -> None:
        r = open_reader(inp)
        try:
            w = open_writer(out, timeout_s)
        except (ChannelTimeout, OSError):
            os.close(r)
            return
        try:
            while True:
                kind, msg = read_frame(r)
                if kind == DATA:
                    try:
                        msg = method(msg)
                    except Exception as exc:  # sent on, so the head reports it; the stage keeps serving
                        msg, kind = f"{type(exc).__name__}: {exc}".encode(), ERROR
                write_frame(w, msg, kind)  # an upstream stage's error passes through untouched
        except (PeerClosed, OSError):
            pass
        finally:
            os.close(w)
            os.close(r)

    thread = threading.Thread(target=loop, name=f"pipe:{getattr(method, '__name__', 'stage')}", daemon=True)
    thread.start()
    return thread


def serve_method(actor: Any, method: str, inp: str, out: str, timeout_s: float) -> None:
    """:func:`serve` ``actor.method``; for ``actor.__ray_call__`` (the thread stays in the actor)."""
    serve(getattr(actor, method), inp, out, timeout_s)


def on_ray_actors(timeout_s: float) -> Callable[[Any, str, str, str], None]:
    """The ``start`` of a :class:`PipeRing` whose stages are Ray actors (each serves on a thread of its
    own process; the call returns once the thread is started)."""
    import ray

    def start(actor: Any, method: str, inp: str, out: str) -> None:
        ray.get(actor.__ray_call__.remote(serve_method, method, inp, out, timeout_s), timeout=timeout_s)

    return start


def lay_pipes(stages: list[tuple[Any, str]], start: Callable[[Any, str, str, str], None]) -> str:
    """Make a ring's pipes in a new folder and have each stage ``(actor, method name)`` serve between
    its two; returns the folder, whose ``p0`` the head writes and whose last pipe it reads
    (:class:`PipeRing`). ``start(actor, method, inp, out)`` makes ``actor`` :func:`serve` its method
    (a Ray actor call, or a direct call in-process). Whoever holds the stages lays the pipes, so the
    head needs no handle to them: the driver lays them, the EnvActor joins them."""
    folder = Path(tempfile.mkdtemp(prefix="thalamus-pipes-"))
    paths = [str(folder / f"p{i}") for i in range(len(stages) + 1)]
    for path in paths:
        os.mkfifo(path, 0o600)
    try:
        for i, (actor, method) in enumerate(stages):
            start(actor, method, paths[i], paths[i + 1])
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)  # stages already serving see no reader, time out and end
        raise
    return str(folder)


class PipeRing:
    """The head's ends of a ring of ``n_stages`` stages laid by :func:`lay_pipes` in ``folder``."""

    def __init__(self, folder: str, n_stages: int, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self.dir = Path(folder)
        self._r = open_reader(str(self.dir / f"p{n_stages}"))
        try:
            self._w = open_writer(str(self.dir / "p0"), timeout_s)
        except BaseException:
            os.close(self._r)
            shutil.rmtree(self.dir, ignore_errors=True)
            raise

    @classmethod
    def around(cls, stages: list[tuple[Any, str]], start: Callable[[Any, str, str, str], None],
               timeout_s: float) -> PipeRing:
        """Lay the pipes and join them as the head, in one process (the tests, the benchmarks)."""
        return cls(lay_pipes(stages, start), len(stages), timeout_s)

    def execute(self, msg: bytes) -> bytes:
        """Send ``msg`` through every stage; the last stage's result. StageFailed if a method raised,
        PeerClosed if a stage's process has gone, ChannelTimeout if one stalled."""
        write_frame(self._w, msg, timeout_s=self.timeout_s)
        kind, out = read_frame(self._r, self.timeout_s)
        if kind == ERROR:
            raise StageFailed(out.decode(errors="replace"))
        return out

    def teardown(self) -> None:
        """Close the head's ends (every stage thread then ends) and remove the pipes."""
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
