"""`thalamus memory export RUN_DIR`: a run's episodes out of its store, for people and for other tools.

    thalamus memory export runs/cartpole --video videos/ --episodes 0-4
    thalamus memory export runs/cartpole --npz steps.npz --csv steps.csv

`--video DIR` writes one MP4 per episode (MPEG-4, playable by ordinary players), its camera frames
enlarged with the caption, the return so far and success drawn under them. `--npz`/`--csv` write the
scalar columns of every committed step (reward, done flags, task, time, success, …) with each step's
episode, for your own plots.
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

from launch.errors import UsageError

BAND = 36  # pixels of text under each frame


def add_parser(msub: argparse._SubParsersAction) -> None:
    p = msub.add_parser("export", help="episodes as MP4 videos, and the scalar columns as NPZ or CSV",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (or its store.zarr)")
    p.add_argument("--video", type=Path, metavar="DIR", help="write episode_NNNNN.mp4 files here (default: none)")
    p.add_argument("--episodes", default="all", metavar="LIST",
                   help="episodes to export as videos: all, or e.g. 0,3,5-7 (default: %(default)s)")
    p.add_argument("--fps", type=int, default=30, help="video frame rate (default: %(default)s)")
    p.add_argument("--scale", type=int, default=4, help="frame enlargement, nearest pixel (default: %(default)s)")
    p.add_argument("--npz", type=Path, metavar="PATH", help="write the scalar columns here (default: none)")
    p.add_argument("--csv", type=Path, metavar="PATH", help="write the scalar columns here (default: none)")
    p.add_argument("--json", action="store_true", help="print what was written as one JSON object")
    p.set_defaults(func=main)


def episode_list(spec: str, n: int) -> list[int]:
    """``all`` or a comma list of indices and inclusive ranges (``0,3,5-7``) of ``n`` episodes."""
    if spec == "all":
        return list(range(n))
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.strip().partition("-")
        try:
            first, last = int(lo), int(hi or lo)
        except ValueError:
            raise UsageError(f"--episodes: {part!r} is not an episode or a range like 5-7") from None
        if not 0 <= first <= last < n:
            raise UsageError(f"--episodes: {part!r} is outside the store's episodes 0-{n - 1}")
        out.extend(range(first, last + 1))
    return out


def main(args: argparse.Namespace) -> int:
    from memory import StoreError, caption_decoder, open_store, read_manifest

    if not (args.video or args.npz or args.csv):
        raise UsageError("nothing to export: give --video DIR, --npz PATH and/or --csv PATH")
    if args.fps < 1 or args.scale < 1:
        raise UsageError(f"--fps and --scale must be at least 1, got {args.fps} and {args.scale}")
    try:
        store = open_store(args.run_dir)
    except StoreError as exc:
        raise UsageError(str(exc)) from None
    if not store.n_episodes:
        raise UsageError(f"{args.run_dir}: the store holds no committed episode yet")
    written: dict[str, Any] = {"run_dir": str(args.run_dir)}
    if args.video:
        if "frame" not in store.keys:
            raise UsageError(f"{args.run_dir}: the store has no camera frames to make videos of (record with frames)")
        episodes = episode_list(args.episodes, store.n_episodes)
        decode, _ = caption_decoder(read_manifest(store.path.parent).get("caption_vocab"))
        args.video.mkdir(parents=True, exist_ok=True)
        written["videos"] = []
        for n, i in enumerate(episodes):
            path = args.video / f"episode_{i:05d}.mp4"
            frames = write_video(store.get_episode(i), decode, path, args.fps, args.scale)
            written["videos"].append({"episode": i, "path": str(path), "frames": frames})
            if not args.json:
                print(f"\r{n + 1}/{len(episodes)} videos", end="", flush=True)
        if not args.json:
            print(f" in {args.video}")
    if args.npz or args.csv:
        columns = scalar_columns(store)
        if args.npz:
            np.savez_compressed(args.npz, **columns)
            written["npz"] = str(args.npz)
        if args.csv:
            with open(args.csv, "w", newline="") as f:
                out = csv.writer(f)
                out.writerow(list(columns))
                out.writerows(zip(*(c.tolist() for c in columns.values())))
            written["csv"] = str(args.csv)
        written["columns"], written["steps"] = list(columns), store.n_steps
        if not args.json:
            print(f"{store.n_steps} steps × {len(columns)} columns: {', '.join(columns)}")
    if args.json:
        print(json.dumps(written))
    return 0


def scalar_columns(store: Any) -> dict[str, np.ndarray]:
    """Each committed step's episode and step in it, and every data array with one number per step."""
    ends = store.episode_ends
    episode = np.repeat(np.arange(len(ends)), np.diff(ends, prepend=0))
    columns = {"episode": episode, "step": np.arange(store.n_steps) - np.concatenate(([0], ends))[episode]}
    for info in store.arrays():
        group, _, key = info.path.partition("/data/")
        if key and len(info.shape) == 1:
            columns[key] = store.column(key)
    return columns


def write_video(episode: dict[str, np.ndarray], decode: Any, path: Path, fps: int, scale: int) -> int:
    """One episode's frames, enlarged, with caption, return so far and success drawn under each; the
    number of frames written."""
    import cv2

    frames = episode["frame"]
    h, w = frames.shape[1] * scale, frames.shape[2] * scale
    width = max(w, 320)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (width, h + BAND))
    if not writer.isOpened():
        raise UsageError(f"{path}: OpenCV cannot write MP4 here (check the directory is writable)")
    rewards = np.cumsum(episode["reward"].astype(np.float64)) if "reward" in episode else None
    success = np.maximum.accumulate(episode["success"].astype(bool)) if "success" in episode else None
    try:
        for t, frame in enumerate(frames):
            canvas = np.zeros((h + BAND, width, 3), np.uint8)
            big = cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST)
            canvas[:h, (width - w) // 2:(width - w) // 2 + w] = big[..., ::-1]  # RGB → OpenCV's BGR
            caption = decode(episode["caption"][t]) if "caption" in episode else ""
            status = f"step {t}" + (f"  return {rewards[t]:.1f}" if rewards is not None else "") + (
                ("  success" if success[t] else "") if success is not None else "")
            cv2.putText(canvas, status, (4, h + 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
            cv2.putText(canvas, caption[:60], (4, h + 30), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (120, 230, 255), 1,
                        cv2.LINE_AA)
            writer.write(canvas)
    finally:
        writer.release()
    return len(frames)
