"""Captioned video clips on disk: a user's own training data for the captioner.

Why: the captioner learns from any stream of frames with a caption per frame; a folder of videos
with caption files is the simplest such stream a person can make, and ``thalamus caption --jsonl``
already writes the caption files, so its output can be corrected by hand and trained on.

The format — one folder, flat (sub-folders other than ``heldout/`` are ignored)::

    DIR/
      walk.mp4        a video: anything OpenCV decodes (.mp4 .avi .mov .mkv .webm, any case)
      walk.jsonl      its captions: same name, beside it
      kitchen.mov
      kitchen.jsonl
      heldout/        optional: more clips in the same format, only used to score the model

``NAME.jsonl`` holds one JSON object per line, ``{"frame": i, "caption": "..."}``, exactly as
``thalamus caption --jsonl`` writes it (other keys, such as ``"t"``, are ignored; blank lines too).
A line means: this caption is in effect from frame ``i`` (counted from 0 in decoding order) until
the next line's frame, or the end of the video. Rules, each checked when the folder is opened:

- ``frame`` is a whole number ≥ 0 and ascends strictly from line to line. Frames before the first
  line are unlabelled and skipped: start at frame 0 to train on the whole video.
- ``caption`` is 1 to 11 words (the captioner's 12 tokens include ``<eos>``), split on whitespace;
  words are case-sensitive, and any word may be used: the checkpoint extends its vocabulary.
- Consecutive lines with the same caption are one segment.
- Every video has its ``.jsonl`` and every ``.jsonl`` its video; a line's frame must be inside the
  video (as far as its container reports its length).

A break of a rule raises :class:`ClipDataError` with one line naming the file (and line number).

Streams: ``ClipBatch(dir, seeds, frame_size).next(n)`` gives frames (B, n, S, S, 3) uint8 RGB and,
per stream, the truth of each frame. Each stream plays every clip in an order drawn from its seed,
then a new order, forever; frames are centre-cropped to a square and resized to ``S`` (what the
captioner sees live, :func:`square_resize`). Frames are decoded as they are needed and not kept, so
memory does not grow with the folder. Scoring is at each segment's last frame (``is_last``), as for
the synthetic scenes: the caption should be right once the segment has been seen.

Evaluation: the trainer scores ``DIR/heldout/`` when it exists (its captions must all occur in DIR,
since the captioner can only emit captions it was trained on); otherwise it scores the same clips
played in other orders, which measures how well they were fitted, not how well it generalises.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES: tuple[str, ...] = (".mp4", ".avi", ".mov", ".mkv", ".webm")
MAX_CAPTION_WORDS = 11  # the captioner's max_len (12) counts <eos>
RESERVED_WORDS = frozenset({"<pad>", "<bos>", "<eos>"})  # the captioner's special tokens
HELDOUT = "heldout"


class ClipDataError(ValueError):
    """A folder of captioned clips breaks the format; the message names the file and line."""


@dataclass(frozen=True)
class Clip:
    """One video and its caption segments: ``captions[k]`` is in effect from frame ``starts[k]``."""

    video: Path
    starts: tuple[int, ...]
    captions: tuple[str, ...]


@dataclass(frozen=True)
class ClipFrameTruth:
    """The caption of one clip frame, and whether the frame ends its segment (where it is scored)."""

    caption: str
    is_last: bool
    clip: str  # the video's file name
    frame: int  # index in the video


def square_resize(rgb: np.ndarray, size: int) -> np.ndarray:
    """Center-crop to a square and resize to ``size`` (what the captioner sees)."""
    h, w = rgb.shape[:2]
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    crop = rgb[top: top + side, left: left + side]
    if side == size:
        return np.ascontiguousarray(crop)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA)


def read_captions(path: Path) -> list[tuple[int, int, str]]:
    """The lines of a captions file as (line number, frame, caption), validated (see the module doc);
    consecutive equal captions are merged into the first."""
    rows: list[tuple[int, int, str]] = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ClipDataError(f"{where}: not valid JSON ({exc.msg}); each line is "
                                    '{"frame": i, "caption": "..."}') from None
            if not isinstance(obj, dict):
                raise ClipDataError(f'{where}: expected a JSON object {{"frame": i, "caption": "..."}}, '
                                    f"got {line.strip()[:60]}")
            frame, text = obj.get("frame"), obj.get("caption")
            if not isinstance(frame, int) or isinstance(frame, bool) or frame < 0:
                raise ClipDataError(f'{where}: "frame" must be a whole number >= 0, got {frame!r}')
            if not isinstance(text, str):
                raise ClipDataError(f'{where}: "caption" must be a string, got {text!r}')
            words = text.split()
            if not 1 <= len(words) <= MAX_CAPTION_WORDS:
                raise ClipDataError(f"{where}: caption {text!r} has {len(words)} words; "
                                    f"a caption has 1 to {MAX_CAPTION_WORDS}")
            reserved = RESERVED_WORDS.intersection(words)
            if reserved:
                raise ClipDataError(f"{where}: caption word {min(reserved)!r} is reserved")
            if rows and frame <= rows[-1][1]:
                raise ClipDataError(f"{where}: frame {frame} does not come after the previous line's "
                                    f"frame {rows[-1][1]}; frames must ascend")
            caption = " ".join(words)
            if not rows or caption != rows[-1][2]:
                rows.append((n, frame, caption))
    if not rows:
        raise ClipDataError(f'{path}: no captions; write one line {{"frame": i, "caption": "..."}} '
                            "each time the caption changes, from frame 0")
    return rows


def _check_video(video: Path, captions: Path, rows: list[tuple[int, int, str]]) -> None:
    """The video opens, decodes a frame, and is long enough for its last caption line."""
    cap = cv2.VideoCapture(str(video))
    try:
        if not cap.isOpened() or not cap.read()[0]:
            raise ClipDataError(f"{video}: OpenCV cannot decode this video; re-encode it, e.g. "
                                f"`ffmpeg -i {video.name} -c:v libx264 {video.stem}.mp4`")
        length = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    finally:
        cap.release()
    n, frame, _ = rows[-1]
    if 0 < length <= frame:
        raise ClipDataError(f"{captions}:{n}: frame {frame} is past the end of {video.name} "
                            f"({length} frames, numbered from 0)")


def scan_clips(root: Path) -> list[Clip]:
    """Every clip of a folder in the format of the module doc, sorted by name, each validated."""
    root = Path(root)
    if not root.is_dir():
        what = "is not a directory" if root.exists() else "does not exist"
        raise ClipDataError(f"{root} {what}: training data is synthetic, env:ID or a directory of "
                            "videos with captions NAME.jsonl beside each")
    files = sorted(p for p in root.iterdir() if p.is_file() and not p.name.startswith("."))
    videos: dict[str, Path] = {}
    for p in files:
        if p.suffix.lower() in VIDEO_SUFFIXES:
            if p.stem in videos:
                raise ClipDataError(f"{videos[p.stem].name} and {p.name} in {root} would share the "
                                    f"captions {p.stem}.jsonl; rename one")
            videos[p.stem] = p
    if not videos:
        raise ClipDataError(f"no videos in {root} (looked for {' '.join(VIDEO_SUFFIXES)}); put each video "
                            "NAME.mp4 beside its captions NAME.jsonl")
    for p in files:
        if p.suffix == ".jsonl" and p.stem not in videos:
            raise ClipDataError(f"{p} has no video beside it (looked for {p.stem} with "
                                f"{' '.join(VIDEO_SUFFIXES)})")
    clips = []
    for stem, video in videos.items():
        captions = root / f"{stem}.jsonl"
        if not captions.is_file():
            raise ClipDataError(f"{video} has no captions file {captions.name} beside it "
                                '(one line {"frame": i, "caption": "..."} per caption change)')
        rows = read_captions(captions)
        _check_video(video, captions, rows)
        clips.append(Clip(video, tuple(f for _, f, _ in rows), tuple(c for _, _, c in rows)))
    return clips


def clip_grammar(root: Path) -> list[str]:
    """Every distinct caption of a folder's clips, sorted: what a captioner trained on it can say."""
    return sorted({c for clip in scan_clips(root) for c in clip.captions})


def heldout_dir(root: Path) -> Path | None:
    """``root/heldout`` if it exists, validated, and only uses captions that occur in ``root``; else None."""
    held = Path(root) / HELDOUT
    if not held.is_dir():
        return None
    known = set(clip_grammar(root))
    for clip in scan_clips(held):
        for caption in clip.captions:
            if caption not in known:
                raise ClipDataError(f"{clip.video.with_suffix('.jsonl')}: caption {caption!r} is in no "
                                    f"clip of {root}; a captioner only emits captions it was trained on")
    return held


def _clip_frames(clip: Clip, size: int) -> Iterator[tuple[np.ndarray, ClipFrameTruth]]:
    """The labelled frames of one clip, resized, with their truths (reads one frame ahead so the
    clip's last frame is known to end its segment)."""
    cap = cv2.VideoCapture(str(clip.video))
    try:
        ok, bgr = cap.read()
        i, seg = 0, -1
        while ok:
            next_ok, next_bgr = cap.read()
            while seg + 1 < len(clip.starts) and clip.starts[seg + 1] <= i:
                seg += 1
            if seg >= 0:
                ends = not next_ok or (seg + 1 < len(clip.starts) and clip.starts[seg + 1] == i + 1)
                rgb = cv2.cvtColor(square_resize(bgr, size), cv2.COLOR_BGR2RGB)
                yield rgb, ClipFrameTruth(clip.captions[seg], ends, clip.video.name, i)
            ok, bgr, i = next_ok, next_bgr, i + 1
    finally:
        cap.release()


def _play(clips: Sequence[Clip], rng: np.random.Generator, size: int) -> Iterator[tuple[np.ndarray, ClipFrameTruth]]:
    """Every clip in a random order, then a new order, forever."""
    while True:
        played = 0
        for k in rng.permutation(len(clips)):
            for item in _clip_frames(clips[k], size):
                played += 1
                yield item
        if not played:
            raise ClipDataError(f"no labelled frame could be decoded from the clips in {clips[0].video.parent}")


class ClipBatch:
    """B persistent streams over a folder of captioned clips (one per seed); ``next(n)`` → frames
    (B, n, S, S, 3) uint8 RGB and, per stream, n :class:`ClipFrameTruth`."""

    def __init__(self, root: Path | str, seeds: Sequence[int], frame_size: int = 64) -> None:
        self.clips = scan_clips(Path(root))
        self.streams = [_play(self.clips, np.random.default_rng(int(s)), frame_size) for s in seeds]

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[ClipFrameTruth]]]:
        """The next ``n_frames`` of every stream."""
        frames, truths = [], []
        for stream in self.streams:
            taken = list(itertools.islice(stream, n_frames))
            frames.append(np.stack([f for f, _ in taken]))
            truths.append([t for _, t in taken])
        return np.stack(frames), truths
