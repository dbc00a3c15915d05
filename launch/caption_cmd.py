"""`thalamus caption`: stream frames through the captioner and print what it sees.

    thalamus caption --source synthetic --max-frames 300
    thalamus caption --source clip.mp4 --out overlay.mp4 --jsonl captions.jsonl
    thalamus caption --source 0                       # the first camera
    thalamus caption --source env:CartPole-v1 --max-frames 200

A file, env or synthetic source is captioned frame by frame, every frame, as fast as the captioner
goes (--fps to play it slower); --realtime plays it at its own rate instead, dropping the frames the
captioner cannot keep up with, as a camera or URL always does. Frame numbers and times are the
source's (t = frame / the source's fps) either way, and --out writes one image per source frame at
the source's fps (with --realtime a dropped frame repeats the last captioned one).

`--jsonl` writes `{"frame": i, "t": seconds, "caption": "..."}` each time the caption changes (the
caption in effect at frame i is the last line with frame ≤ i): corrected by hand and put beside its
video, it is training data (`thalamus train captioner --data DIR`). Captions come from the grammar the
checkpoint was trained on: an env source gets the shipped captioner trained on that env's renders when
there is one (CartPole-v1), anything else the one that knows the built-in synthetic scenes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from launch.errors import UsageError

VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".avi", ".mkv")  # containers OpenCV writes mp4v video into


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption a camera, video, URL, env or synthetic stream",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="synthetic", metavar="SRC",
                   help="camera index, video path, rtsp/http URL, env:ID or synthetic (default: synthetic)")
    p.add_argument("--out", type=Path, metavar="MP4",
                   help=f"write the video with captions drawn on it ({', '.join(VIDEO_SUFFIXES)}; default: none)")
    p.add_argument("--jsonl", type=Path, metavar="PATH", help="write one line per caption change (default: none)")
    p.add_argument("--max-frames", type=int, metavar="N",
                   help="stop after the source's first N frames (default: all; env and synthetic sources are endless)")
    p.add_argument("--realtime", action="store_true",
                   help="play a file, env or synthetic source at its own rate (or --fps) and drop the frames the "
                        "captioner cannot keep up with, as cameras and URLs always do (default: every frame)")
    p.add_argument("--fps", type=float, metavar="HZ",
                   help="play a file, env or synthetic source at HZ; output frame numbers and times stay the "
                        "source's (default: as fast as the captioner goes; with --realtime, the source's rate)")
    p.add_argument("--show", action="store_true", help="show the captioned video in a window")
    p.add_argument("--checkpoint", type=Path, metavar="PT",
                   help="captioner weights (default: the shipped ones for an env source's env, if any, else "
                        "agent/perception/checkpoints/captioner.pt)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="caption each frame through one torch.compile'd function (~2.7× the frames/s on a CPU "
                        "core; seconds to build before the first frame, longer the first time on a machine) "
                        "(default: on for cameras, URLs and --realtime, where a slower captioner drops frames)")
    p.add_argument("--seed", type=int, default=0, help="seed of env and synthetic sources")
    p.add_argument("--json", action="store_true", help="print the end-of-stream summary as one JSON object")
    p.set_defaults(func=main)


def _check_writable(flag: str, path: Path, example: str) -> None:
    """Raise UsageError unless ``path`` can be written. Checked before the first frame is read, so a
    bad path costs nothing (found at the first write, it would lose what came before)."""
    if path.is_dir():
        raise UsageError(f"{flag} {path}: is a directory; give a file path, e.g. {path / example}")
    parent = path.parent
    if not parent.exists():
        raise UsageError(f"{flag} {path}: no such directory {parent}; create it first (mkdir -p {parent}) "
                         "or choose another path")
    if not parent.is_dir():
        raise UsageError(f"{flag} {path}: {parent} is not a directory; choose a path in a directory")
    existed = path.exists()
    try:
        with path.open("a"):
            pass
    except OSError as exc:
        raise UsageError(f"{flag} {path}: cannot write it ({exc.strerror}); choose a writable location") from None
    if not existed:
        path.unlink()


def _check_args(args: argparse.Namespace) -> None:
    """Every flag checked before any work starts; a bad one raises UsageError naming the fix."""
    from envs.sources import is_live

    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be positive, got {args.max_frames}")
    if args.fps is not None and not args.fps > 0:
        raise UsageError(f"--fps must be a positive frame rate, got {args.fps}")
    if args.fps is not None and is_live(args.source):
        raise UsageError(f"--fps paces a file, env or synthetic source; {args.source} runs at its own rate: "
                         "leave --fps out")
    if args.show:
        raise UsageError("--show needs a display and an OpenCV built with GUI support; this install is "
                         "headless: use --out overlay.mp4 instead")
    if args.out is not None:
        if args.out.suffix.lower() not in VIDEO_SUFFIXES:
            raise UsageError(f"--out {args.out}: unknown video extension {args.out.suffix or '(none)'!r}; "
                             f"use one of {', '.join(VIDEO_SUFFIXES)}, e.g. --out overlay.mp4")
        if Path(args.source).is_file() and args.out.resolve() == Path(args.source).resolve():
            raise UsageError(f"--out {args.out} is the source itself; choose another path")
        _check_writable("--out", args.out, "overlay.mp4")
    if args.jsonl is not None:
        _check_writable("--jsonl", args.jsonl, "captions.jsonl")


def _checkpoint(given: Path | None, source: str) -> Path:
    """``--checkpoint`` (checked), else the shipped captioner trained on an env source's renders,
    else the shipped default (the synthetic scenes)."""
    from agent.perception.live import DEFAULT_CHECKPOINT, env_checkpoint
    from agent.perception.train import checkpoint_meta

    if given is None:
        return (env_checkpoint(source[4:]) if source.startswith("env:") else None) or DEFAULT_CHECKPOINT
    if not given.is_file():
        raise UsageError(f"no captioner checkpoint at {given}: train one with `thalamus train captioner`")
    try:
        checkpoint_meta(given)
    except ValueError as exc:
        raise UsageError(f"--checkpoint: {exc}") from None
    return given


def _overlay(rgb: np.ndarray, text: str) -> np.ndarray:
    """The frame scaled up to about 512 px (BGR) with ``text`` in a bar under it."""
    import cv2

    scale = max(1, 512 // max(rgb.shape[:2]))
    big = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else rgb.copy()
    bgr = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
    cv2.rectangle(bgr, (0, bgr.shape[0] - 28), (bgr.shape[1], bgr.shape[0]), (0, 0, 0), -1)
    cv2.putText(bgr, text, (6, bgr.shape[0] - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


class _OverlayVideo:
    """The ``--out`` video: image i is source frame i, captioned, at the source's fps. A frame the
    captioner skipped (realtime) repeats the image before it, so the video keeps the source's timing."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps, self.frames = path, fps, 0
        self._writer = None
        self._last: np.ndarray | None = None

    def add(self, index: int, rgb: np.ndarray, text: str) -> None:
        import cv2

        image = _overlay(rgb, text)
        if self._writer is None:
            self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps,
                                           (image.shape[1], image.shape[0]))
            if not self._writer.isOpened():
                raise UsageError(f"--out {self.path}: OpenCV cannot write mp4v video there; try a .mp4 path")
        while self.frames < index:  # frames dropped before this one
            self._writer.write(self._last if self._last is not None else image)
            self.frames += 1
        self._writer.write(image)
        self.frames += 1
        self._last = image

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()


def main(args: argparse.Namespace) -> int:
    _check_args(args)
    import torch

    from agent.perception.live import LiveCaptioner
    from envs.sources import is_live, open_source

    checkpoint = _checkpoint(args.checkpoint, args.source)
    captioner = LiveCaptioner(checkpoint)
    source = open_source(args.source, frame_size=captioner.size, seed=args.seed, fps=args.fps,
                         realtime=args.realtime, limit=args.max_frames)  # a bad source is said before compiling
    if args.compile or (args.compile is None and (args.realtime or is_live(args.source))):
        # a played source's clock starts at the first frame taken; a camera's frames meanwhile are dropped
        print("thalamus: compiling the captioner (seconds; longer the first time on a machine) ...", file=sys.stderr)
        torch.set_num_threads(1)  # a frame is too small to split; threads waiting on each other stall when busy
        captioner.compile()
    video = _OverlayVideo(args.out, source.fps) if args.out else None
    jsonl = None
    caption, captioned, changes, started, previous = None, 0, 0, time.perf_counter(), None
    try:
        jsonl = args.jsonl.open("w") if args.jsonl else None
        while (frame := source.get()) is not None:
            # frames dropped to keep up are a gap the captioner is told of (a model with timing reads it)
            text = captioner.caption(frame.rgb, 1 if previous is None else frame.index - previous)
            previous = frame.index
            captioned += 1
            if text != caption:
                caption, changes = text, changes + 1
                if not args.json:
                    print(f"[{frame.t:8.2f}s] frame {frame.index:6d}: {text}", flush=True)
                if jsonl:
                    jsonl.write(json.dumps({"frame": frame.index, "t": round(frame.t, 4), "caption": text}) + "\n")
                    jsonl.flush()
            if video:
                video.add(frame.index, frame.rgb, text)
    finally:
        source.close()
        if video:
            video.close()
        if jsonl:
            jsonl.close()
    elapsed = time.perf_counter() - started
    summary = {"frames_read": source.read, "frames_captioned": captioned, "frames_dropped": source.dropped,
               "seconds": elapsed, "captioned_fps": captioned / elapsed if elapsed else 0.0,
               "source_fps": source.fps, "realtime": source.realtime, "compiled": captioner.compiled,
               "checkpoint": str(checkpoint),
               "out": str(args.out) if args.out else None, "jsonl": str(args.jsonl) if args.jsonl else None}
    if args.json:
        print(json.dumps(summary))
        return 0
    dropped = (f"{source.dropped} dropped (the captioner fell behind)" if source.dropped
               else "none dropped")
    print(f"{source.read} frames read, {captioned} captioned, {dropped}, in {elapsed:.1f} s "
          f"({summary['captioned_fps']:.1f} captioned/s; the source runs at {source.fps:g} fps); "
          f"captioner {checkpoint}")
    if video:
        print(f"wrote {video.path}: {video.frames} frames at {video.fps:g} fps")
    if args.jsonl:
        print(f"wrote {args.jsonl}: {changes} caption changes")
    return 0
