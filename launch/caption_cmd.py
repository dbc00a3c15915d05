"""`thalamus caption`: stream frames through the captioner and print what it sees.

    thalamus caption --source synthetic --max-frames 300
    thalamus caption --source clip.mp4 --out overlay.mp4 --jsonl captions.jsonl
    thalamus caption --source 0                       # the first camera
    thalamus caption --source env:Reacher-v5 --max-frames 200

Frames are read at the source's pace; when the captioner falls behind, the oldest frames are dropped
and counted. `--jsonl` writes `{"frame": i, "t": seconds, "caption": "..."}` each time the caption
changes (the caption in effect at frame i is the last line with frame ≤ i): corrected by hand and put
beside its video, it is training data (`thalamus train captioner --data DIR`). Captions come from the
grammar the checkpoint was trained on; the shipped one knows the built-in synthetic scenes.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from launch.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("caption", help="caption a camera, video, URL, env or synthetic stream",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", default="synthetic", metavar="SRC",
                   help="camera index, video path, rtsp/http URL, env:ID or synthetic (default)")
    p.add_argument("--out", type=Path, metavar="MP4", help="write the video with captions drawn on it")
    p.add_argument("--jsonl", type=Path, metavar="PATH", help="write one line per caption change")
    p.add_argument("--max-frames", type=int, metavar="N", help="stop after N frames")
    p.add_argument("--show", action="store_true", help="show the captioned video in a window")
    p.add_argument("--checkpoint", type=Path, metavar="PT", help="captioner weights (default: the shipped ones)")
    p.add_argument("--fps", type=float, metavar="HZ", help="pace of file/env/synthetic sources (default: theirs, or 30)")
    p.add_argument("--seed", type=int, default=0, help="seed of env and synthetic sources")
    p.add_argument("--json", action="store_true", help="print the end-of-stream summary as one JSON object")
    p.set_defaults(func=main)


def _overlay(rgb, text: str):
    import cv2

    scale = max(1, 512 // max(rgb.shape[:2]))
    big = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST) if scale > 1 else rgb.copy()
    bgr = cv2.cvtColor(big, cv2.COLOR_RGB2BGR)
    cv2.rectangle(bgr, (0, bgr.shape[0] - 28), (bgr.shape[1], bgr.shape[0]), (0, 0, 0), -1)
    cv2.putText(bgr, text, (6, bgr.shape[0] - 9), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
    return bgr


def main(args: argparse.Namespace) -> int:
    if args.max_frames is not None and args.max_frames < 1:
        raise UsageError(f"--max-frames must be positive, got {args.max_frames}")
    if args.show:
        raise UsageError("--show needs a display and an OpenCV built with GUI support; this install is "
                         "headless: use --out overlay.mp4 instead")
    from agent.perception.live import DEFAULT_CHECKPOINT, LiveCaptioner
    from agent.perception.train import checkpoint_meta
    from envs.sources import open_source

    checkpoint = args.checkpoint or DEFAULT_CHECKPOINT
    if not checkpoint.is_file():
        raise UsageError(f"no captioner checkpoint at {checkpoint}: train one with `thalamus train captioner`")
    try:
        checkpoint_meta(checkpoint)
    except ValueError as exc:
        raise UsageError(f"--checkpoint: {exc}") from None
    captioner = LiveCaptioner(checkpoint)
    source = open_source(args.source, frame_size=captioner.size, seed=args.seed, fps=args.fps)
    writer = jsonl = None
    caption, n, started = None, 0, time.perf_counter()
    try:
        if args.jsonl:
            jsonl = args.jsonl.open("w")
        while args.max_frames is None or n < args.max_frames:
            frame = source.get()
            if frame is None:
                break
            n += 1
            text = captioner.caption(frame.rgb)
            if text != caption:
                caption = text
                print(f"[{frame.t:8.2f}s] frame {frame.index:6d}: {text}", flush=True) if not args.json else None
                if jsonl:
                    jsonl.write(json.dumps({"frame": frame.index, "t": round(frame.t, 4), "caption": text}) + "\n")
                    jsonl.flush()
            if args.out:
                import cv2

                image = _overlay(frame.rgb, text)
                if writer is None:
                    args.out.parent.mkdir(parents=True, exist_ok=True)
                    writer = cv2.VideoWriter(str(args.out), cv2.VideoWriter_fourcc(*"mp4v"), source.fps,
                                             (image.shape[1], image.shape[0]))
                writer.write(image)
    finally:
        source.close()
        if writer is not None:
            writer.release()
        if jsonl is not None:
            jsonl.close()
    elapsed = time.perf_counter() - started
    summary = {"frames": n, "dropped": source.dropped, "seconds": elapsed,
               "captioned_fps": n / elapsed if elapsed else 0.0, "source_fps": source.fps}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{n} frames captioned in {elapsed:.1f} s ({summary['captioned_fps']:.1f}/s at a source pace of "
              f"{source.fps:.1f}/s), {source.dropped} dropped")
    return 0
