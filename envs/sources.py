"""Frame sources for live captioning: cameras, video files and URLs (OpenCV), environments, and the
built-in synthetic scenes — each read on its own thread at its own pace into a drop-oldest channel.

``open_source(spec)`` takes what a user types: ``0`` (camera index), ``clip.mp4`` (a file),
``rtsp://…`` / ``http://…`` (a stream), ``env:Reacher-v5`` or ``synthetic``. A source that cannot
be opened raises :class:`SourceError` with one line saying what and how to fix it.
"""

from __future__ import annotations

import collections
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np


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


class _Reader:
    """Produces frames at the source's pace on a thread; keeps only the newest ``capacity``."""

    def __init__(self, produce: Iterator[np.ndarray], fps: float, paced: bool, capacity: int = 2) -> None:
        self.fps = fps
        self._produce, self._paced = produce, paced
        self._queue: collections.deque[Frame] = collections.deque(maxlen=capacity)
        self._cond = threading.Condition()
        self.dropped = 0
        self.read = 0
        self.done = False
        self.error: str | None = None
        self._stop = threading.Event()
        self._wanted = threading.Event()  # paced sources start their clock at the first get()
        self._thread = threading.Thread(target=self._run, name="frame-reader", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        if self._paced:
            self._wanted.wait()
        start: float | None = None  # the clock starts at the first frame (opening may be slow)
        try:
            for i, rgb in enumerate(self._produce):
                if self._stop.is_set():
                    break
                start = time.monotonic() if start is None else start
                if self._paced:  # a file or a simulator: release frame i at i / fps
                    delay = start + i / self.fps - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                with self._cond:
                    if len(self._queue) == self._queue.maxlen:
                        self.dropped += 1  # the consumer fell behind: the oldest frame goes
                    self._queue.append(Frame(i, i / self.fps, rgb, time.monotonic()))
                    self.read += 1
                    self._cond.notify()
        except Exception as exc:  # reported to the consumer, which owns the error message
            self.error = f"{type(exc).__name__}: {exc}"
        with self._cond:
            self.done = True
            self._cond.notify()

    def get(self, timeout: float = 10.0) -> Frame | None:
        """The oldest frame not yet taken; None when the source has ended."""
        self._wanted.set()
        with self._cond:
            if not self._cond.wait_for(lambda: self._queue or self.done, timeout):
                raise SourceError(f"no frame for {timeout:.0f} s: the source has stalled")
            if self._queue:
                return self._queue.popleft()
            if self.error:
                raise SourceError(f"reading frames failed: {self.error}")
            return None

    def close(self) -> None:
        """Stop reading and wait for the reader thread (it releases the camera, file or env)."""
        self._stop.set()
        self._wanted.set()
        self._thread.join(timeout=5)


def _opencv_frames(cap: cv2.VideoCapture) -> Iterator[np.ndarray]:
    try:
        while True:
            ok, bgr = cap.read()
            if not ok:
                return
            yield cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
    finally:
        cap.release()


def _env_frames(env_id: str, frame_size: int, seed: int) -> Iterator[np.ndarray]:
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


def _synthetic_frames(frame_size: int, seed: int) -> Iterator[np.ndarray]:
    from envs.synthetic import SceneConfig, SceneStream

    for frame, _ in SceneStream(seed, SceneConfig(frame_size=frame_size)):
        yield frame


def open_source(spec: str, frame_size: int = 64, seed: int = 0, fps: float | None = None) -> _Reader:
    """Open a source and start reading it (see the module docstring for ``spec``)."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    if spec == "synthetic":
        return _Reader(_synthetic_frames(frame_size, seed), fps or 30.0, paced=True)
    if spec.startswith("env:"):
        return _Reader(_env_frames(spec[4:], frame_size, seed), fps or 30.0, paced=True)
    is_camera = spec.isdigit()
    is_url = "://" in spec
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
    source_fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    return _Reader(_opencv_frames(cap), fps or source_fps, paced=not (is_camera or is_url))
