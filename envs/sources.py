"""Frame sources for live captioning: cameras, video files and URLs (OpenCV), environments, and the
built-in synthetic scenes, each read on its own thread.

``open_source(spec)`` takes what a user types: ``0`` (camera index), ``clip.mp4`` (a file),
``rtsp://…`` / ``http://…`` (a stream), ``env:Reacher-v5`` or ``synthetic``. A source that cannot
be opened raises :class:`SourceError` (an unknown env id: ``EnvNotFoundError``) with one line saying
what and how to fix it.

Two ways to read. A live source (a camera or a URL) cannot wait: it is *realtime*, read into a
drop-oldest channel, and a consumer that falls behind loses the oldest frames (counted). A file, an
env or the synthetic scenes can wait, so by default every frame is delivered in order, the reader
pausing while the consumer is busy; ``realtime=True`` plays them like a live source instead. Either
way a frame's index and time are those of the source (``t = index / fps``), whatever the pace.
"""

from __future__ import annotations

import collections
import itertools
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

DEFAULT_FPS = 30.0  # the clock of env and synthetic sources, and of a file or camera that gives none


class SourceError(ValueError):
    """A frame source could not be opened or read."""


@dataclass
class Frame:
    """One frame as read: RGB uint8 (H, W, 3), its index in the source, its time in seconds (on the
    source's clock) and ``captured``, the ``time.monotonic()`` at which it was read (for latency)."""

    index: int
    t: float
    rgb: np.ndarray
    captured: float = 0.0


class FrameReader:
    """Reads a source on a thread into a channel of ``capacity`` frames.

    ``fps`` is the source's own rate (frame ``i`` is at ``i / fps``); ``pace``, when set, releases
    frame ``i`` no earlier than ``i / pace`` after the first ``get()``. ``realtime``: a full channel
    drops its oldest frame (counted in ``dropped``); otherwise the reader waits for room, so every
    frame is delivered. ``limit`` stops the source after that many frames.
    """

    def __init__(self, produce: Generator[np.ndarray, None, None], fps: float, pace: float | None,
                 realtime: bool, limit: int | None = None, capacity: int = 2) -> None:
        self.fps, self.pace, self.realtime = fps, pace, realtime
        self._produce, self._limit = produce, limit
        self._queue: collections.deque[Frame] = collections.deque()
        self._capacity = capacity
        self._cond = threading.Condition()
        self.dropped = 0
        self.read = 0
        self.done = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._wanted = threading.Event()  # a paced source starts its clock at the first get()
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self.pace is not None:
            self._wanted.wait()
        start: float | None = None  # the clock starts at the first frame (opening may be slow)
        try:
            for i, rgb in enumerate(itertools.islice(self._produce, self._limit)):
                if self._stop.is_set():
                    break
                start = time.monotonic() if start is None else start
                if self.pace is not None:  # release frame i at i / pace
                    delay = start + i / self.pace - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                self._put(Frame(i, i / self.fps, rgb, time.monotonic()))
        except Exception as exc:  # reported to the consumer, which owns the error message
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self._produce.close()  # releases the camera, file or env on the thread that used it
        with self._cond:
            self.done = True
            self._cond.notify_all()

    def _put(self, frame: Frame) -> None:
        with self._cond:
            if self.realtime and len(self._queue) == self._capacity:
                self._queue.popleft()
                self.dropped += 1  # the consumer fell behind: the oldest frame goes
            else:
                self._cond.wait_for(lambda: len(self._queue) < self._capacity or self._stop.is_set())
            self._queue.append(frame)
            self.read += 1
            self._cond.notify_all()

    def get(self, timeout: float = 10.0) -> Frame | None:
        """The oldest frame not yet taken; None when the source has ended."""
        self._wanted.set()
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue or self.done, timeout):
                raise SourceError(f"no frame for {timeout:.0f} s: the source has stalled")
            if self._queue:
                frame = self._queue.popleft()
                self._cond.notify_all()  # a waiting reader has room again
                return frame
            if self.error:
                raise SourceError(f"reading frames failed: {self.error}")
            return None

    def close(self) -> None:
        """Stop reading and wait for the reader thread (it releases the camera, file or env)."""
        self._stop.set()
        self._wanted.set()
        with self._cond:
            self._cond.notify_all()
        self._thread.join(timeout=5)


def _opencv_frames(cap: cv2.VideoCapture) -> Generator[np.ndarray, None, None]:
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _env_frames(env_id: str, frame_size: int, seed: int) -> Generator[np.ndarray, None, None]:
    from envs.registry import make  # gymnasium only when an env is asked for

    env = make(env_id, frame_size=frame_size, seed=seed)
    try:
        obs, _ = env.reset()
        while True:
            yield obs["frame"]
            obs, _, term, trunc, _ = env.step(env.action_space.sample())
            if term or trunc:
                obs, _ = env.reset()
    finally:
        env.close()


def _synthetic_frames(frame_size: int, seed: int) -> Generator[np.ndarray, None, None]:
    from envs.synthetic import SceneConfig, SceneStream

    for frame, _ in SceneStream(seed, SceneConfig(frame_size=frame_size)):
        yield frame


def is_live(spec: str) -> bool:
    """Whether ``spec`` names a live source (a camera index or a URL): one that cannot wait."""
    return spec.isdigit() or "://" in spec


def open_source(spec: str, frame_size: int = 64, seed: int = 0, fps: float | None = None,
                realtime: bool = False, limit: int | None = None) -> FrameReader:
    """Open a source and start reading it (see the module docstring for ``spec``).

    ``realtime``: drop the oldest frames when the consumer falls behind (always so for a live source);
    otherwise every frame is delivered. ``fps``: the pace at which a file, env or synthetic source is
    played (default: its own rate when realtime, else as fast as the consumer takes frames); it never
    changes the frames' times. ``limit``: read at most that many frames of the source.
    """
    if fps is not None and fps <= 0:
        raise SourceError(f"a source's pace must be a positive frame rate, got {fps}")

    def reader(frames: Generator[np.ndarray, None, None], source_fps: float, live: bool = False) -> FrameReader:
        pace = None if live else fps or (source_fps if realtime else None)
        return FrameReader(frames, source_fps, pace, realtime or live, limit)

    if spec == "synthetic":
        return reader(_synthetic_frames(frame_size, seed), DEFAULT_FPS)
    if spec.startswith("env:"):
        from envs.registry import env_spec  # gymnasium only when an env is asked for

        env_spec(spec[4:])  # an unknown id is bad input, said here rather than by the reader thread
        return reader(_env_frames(spec[4:], frame_size, seed), DEFAULT_FPS)
    is_camera, is_url = spec.isdigit(), "://" in spec
    if not (is_camera or is_url) and not Path(spec).is_file():
        raise SourceError(f"no video file at {spec!r} (a source is a camera index like 0, a video file, "
                          "an rtsp:// or http:// URL, env:ID or synthetic)")
    cap = cv2.VideoCapture(int(spec) if is_camera else spec)
    if not cap.isOpened():
        what = f"camera {spec}" if is_camera else (f"stream {spec}" if is_url else f"video {spec}")
        hint = ("is a camera connected (ls /dev/video*), and free?" if is_camera
                else "check the address and that the stream is up" if is_url
                else "is it a video format OpenCV can decode (mp4v, MJPG, XVID)?")
        raise SourceError(f"cannot open {what}: {hint}")
    return reader(_opencv_frames(cap), cap.get(cv2.CAP_PROP_FPS) or DEFAULT_FPS, live=is_camera or is_url)
