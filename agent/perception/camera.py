"""What a live camera on a busy machine does to a stream, for training and scoring captioners.

A reader that falls behind skips frames (1–4 at a time), a driver sometimes hands the same frame twice,
and a camera is not a renderer: JPEG compression (quality 30–95), brightness and contrast off, and
sensor noise. ``CameraStreams`` wraps any batch of captioned streams (``open_batch``'s) and gives the
frames as such a camera would, each with the number of source frames since the one before it (the
``gaps`` a captioner with ``timing`` reads; a frame and its truth always stay together).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np


@dataclass(frozen=True)
class CameraConfig:
    """How rough the camera is; the defaults are what the shipped captioners were trained with."""

    busy: float = 0.5  # each chunk of a stream skips with a probability drawn from [0, busy] per frame
    max_skip: int = 4  # frames skipped at once: 1..max_skip
    repeat: float = 0.05  # probability a frame is handed twice (gap 0)
    jpeg: tuple[int, int] = (30, 95)  # quality range; a stream's chunk is compressed at one quality...
    jpeg_share: float = 0.5  # ...in this share of chunks (the others are raw)
    brightness: float = 25.0  # added to every pixel: uniform in ±this, per chunk
    contrast: tuple[float, float] = (0.75, 1.25)  # scaled about mid-grey, per chunk
    noise: float = 6.0  # sensor noise std (0..this, per chunk), in pixel levels


@dataclass(frozen=True)
class TimedTruth:
    """A frame's truth as the camera delivered it: the caption, whether it is scored, its gap."""

    caption: str
    is_last: bool
    gap: int  # source frames since the previous delivered frame (0: the same frame again)


class CameraStreams:
    """Single-stream batches (each ``open_batch(data, [seed])``) through a busy camera: ``next(n)`` →
    frames (B, n, S, S, 3) and per stream n :class:`TimedTruth`; each stream reads as many source frames
    as its skips need. A delivered frame is scored (``is_last``) when a segment of the source ends
    between it and the next delivered frame: a skipped segment end moves to the frame before it."""

    def __init__(self, streams: list[Any], seed: int, cfg: CameraConfig = CameraConfig()) -> None:
        self.streams, self.cfg = streams, cfg
        self.rng = np.random.default_rng(seed)
        self.last: list[tuple[np.ndarray, Any] | None] = [None] * len(streams)  # each stream's last delivered

    def _gaps(self, n: int, can_repeat: bool) -> np.ndarray:
        """n gaps: 0 a repeat, 1 the next source frame, k + 1 after k skipped."""
        c, rng = self.cfg, self.rng
        u = rng.random(n)
        skips = 1 + rng.integers(1, c.max_skip + 1, n)
        gaps = np.where(u < c.repeat, 0, np.where(u < c.repeat + rng.uniform(0, c.busy), skips, 1))
        if not can_repeat and gaps[0] == 0:
            gaps[0] = 1
        return gaps

    def _degrade(self, frames: np.ndarray) -> np.ndarray:
        c, rng = self.cfg, self.rng
        gain = np.float32(rng.uniform(*c.contrast))
        x = frames.astype(np.float32) * gain + np.float32(127.5 * (1 - gain) + rng.uniform(-c.brightness, c.brightness))
        x += rng.standard_normal(x.shape, dtype=np.float32) * np.float32(rng.uniform(0, c.noise))
        out = np.clip(x, 0, 255).astype(np.uint8)
        if rng.random() < c.jpeg_share:
            quality = [cv2.IMWRITE_JPEG_QUALITY, int(rng.integers(c.jpeg[0], c.jpeg[1] + 1))]
            out = np.stack([cv2.imdecode(cv2.imencode(".jpg", f, quality)[1], cv2.IMREAD_UNCHANGED) for f in out])
        return out

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[TimedTruth]]]:
        frames, timed = [], []
        for b, stream in enumerate(self.streams):
            gaps = self._gaps(n_frames, self.last[b] is not None)
            if not gaps.sum():  # all repeats: the camera still moves on once
                gaps[-1] = 1
            source, truths = stream.next(int(gaps.sum()))
            source, truths = source[0], truths[0]
            index = np.cumsum(gaps) - 1  # -1: a repeat of the previous chunk's last frame
            ends = np.cumsum([t.is_last for t in truths])  # segment ends among the source frames up to each
            picked, chunk = [], []
            for j, (i, g) in enumerate(zip(index, gaps)):
                if i < 0:
                    frame, truth = self.last[b]
                else:
                    frame, truth = source[i], truths[i]
                following = index[j + 1] if j + 1 < len(index) else len(truths)
                if following == i:
                    scored = False
                else:
                    scored = i >= 0 and bool(ends[following - 1] - (ends[i - 1] if i > 0 else 0))
                picked.append(frame)
                chunk.append(TimedTruth(truth.caption, scored, int(g)))
            self.last[b] = (picked[-1], truths[index[-1]] if index[-1] >= 0 else self.last[b][1])
            frames.append(self._degrade(np.stack(picked)))
            timed.append(chunk)
        return np.stack(frames), timed
