"""Live captioning as a user meets it: `thalamus caption --realtime` on a held-out clip, quiet and loaded.

    python benchmarks/live_caption.py --checkpoints OLD.pt agent/perception/checkpoints/captioner.pt
    python benchmarks/live_caption.py --frames 1800 --quality 75 40 --load 0 2 --json out.json
    python -P benchmarks/live_caption.py --compile off on    # the captioner eager and compiled, side by side

Writes a clip of the built-in synthetic scenes from a seed no training used (MJPG .avi at each JPEG
``--quality``, 30 fps, with its truth), then runs the real command on it, ``--realtime`` (frames the
captioner cannot keep up with are dropped, as from a camera), once per (checkpoint, quality, load),
where ``--load N`` keeps N busy-looping processes running meanwhile. Scores the caption in effect at
each segment's last frame (the command's ``--jsonl``) against the truth, and the frames dropped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
SEED = 123_456_789  # a scene stream no training or evaluation seed reaches


def write_clip(path: Path, frames: int, quality: int) -> list[tuple[int, str]]:
    """The clip at ``path`` and its scored frames: (index of a segment's last frame, its caption)."""
    from envs.synthetic import SceneConfig, SceneStream

    video, truths = SceneStream(SEED, SceneConfig(frame_size=64)).take(frames)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (64, 64))
    writer.set(cv2.VIDEOWRITER_PROP_QUALITY, quality)
    for rgb in video:
        writer.write(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    writer.release()
    return [(i, t.caption) for i, t in enumerate(truths) if t.is_last]


def score(jsonl: Path, scored: list[tuple[int, str]]) -> float:
    """Share of scored frames whose caption in effect (the last change at or before it) is the truth."""
    changes = [json.loads(line) for line in jsonl.read_text().splitlines()]
    starts = np.array([c["frame"] for c in changes])
    hits = 0
    for frame, truth in scored:
        k = int(np.searchsorted(starts, frame, side="right")) - 1
        hits += k >= 0 and changes[k]["caption"] == truth
    return hits / len(scored)


COMPILE_FLAGS = {"default": [], "on": ["--compile"], "off": ["--no-compile"]}


def run(checkpoint: Path, clip: Path, scored: list[tuple[int, str]], load: int, out: Path, compile: str) -> dict:
    """One `thalamus caption --realtime` while ``load`` busy processes run: accuracy and drops."""
    busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(load)]
    try:
        time.sleep(0.5 if load else 0)
        proc = subprocess.run([sys.executable, "-m", "launch.cli", "caption", "--source", str(clip), "--realtime",
                               "--checkpoint", str(checkpoint), "--jsonl", str(out), "--json",
                               *COMPILE_FLAGS[compile]],
                              capture_output=True, text=True, cwd=ROOT, check=True)
    finally:
        for p in busy:
            p.kill()
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"exact": score(out, scored), "segments": len(scored), "frames_read": summary["frames_read"],
            "frames_dropped": summary["frames_dropped"], "compiled": summary.get("compiled")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoints", type=Path, nargs="+",
                        default=[ROOT / "agent/perception/checkpoints/captioner.pt"], help="captioners to compare")
    parser.add_argument("--frames", type=int, default=1800, help="clip length (30 fps)")
    parser.add_argument("--quality", type=int, nargs="+", default=[75, 40], help="JPEG qualities of the clip")
    parser.add_argument("--load", type=int, nargs="+", default=[0, 2], help="busy processes beside the command")
    parser.add_argument("--compile", nargs="+", choices=list(COMPILE_FLAGS), default=["default"],
                        help="the command's --compile / --no-compile, or neither (default: default)")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for quality in args.quality:
            clip = Path(tmp) / f"heldout-q{quality}.avi"
            scored = write_clip(clip, args.frames, quality)
            for load in args.load:
                for checkpoint in args.checkpoints:
                    for compile in args.compile:
                        row = {"checkpoint": str(checkpoint), "quality": quality, "load": load, "compile": compile,
                               **run(checkpoint, clip, scored, load, Path(tmp) / "captions.jsonl", compile)}
                        results.append(row)
                        print(json.dumps(row), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"frames": args.frames, "seed": SEED, "results": results}, indent=1))


if __name__ == "__main__":
    main()
