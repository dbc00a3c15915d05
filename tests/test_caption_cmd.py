"""`thalamus caption` on real sources: the synthetic stream, a video file written with OpenCV, an env."""

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from conftest import one_clear_line, run_here, run_main
from envs.synthetic import SceneStream, all_captions


def _summary(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_synthetic_stream_captions_are_mostly_right_and_jsonl_is_well_formed(tmp_path):
    jsonl, video = tmp_path / "c.jsonl", tmp_path / "overlay.mp4"
    summary = _summary(run_here("caption", "--source", "synthetic", "--seed", "5", "--max-frames", "120",
                               "--jsonl", str(jsonl), "--out", str(video), "--json"))
    assert summary["frames_captioned"] == 120 and Path(summary["checkpoint"]).name == "captioner.pt"
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert events[0]["frame"] == 0 and all(e["caption"] in set(all_captions()) for e in events)
    frames = [e["frame"] for e in events]
    assert frames == sorted(set(frames))  # one line per change, in order
    # the caption in effect at each segment's last frame (seen frames only) against the truth
    _, truths = SceneStream(5).take(120)
    hits = total = 0
    for i, truth in enumerate(truths):
        if truth.is_last:
            in_effect = [e["caption"] for e in events if e["frame"] <= i][-1]
            hits += in_effect == truth.caption
            total += 1
    assert total >= 6 and hits / total >= 0.8
    cap = cv2.VideoCapture(str(video))
    ok, image = cap.read()
    assert ok and image.shape[0] >= 256


@pytest.mark.parametrize("argv, expect", [
    (["caption", "--source", "7"], "cannot open camera 7"),
    (["caption", "--source", "/no/such/clip.mp4"], "no video file at '/no/such/clip.mp4'"),
    (["caption", "--max-frames", "0"], "--max-frames must be positive"),
    (["caption", "--show"], "--show needs a display"),
    (["caption", "--fps", "0", "--max-frames", "3"], "--fps must be a positive frame rate"),
    (["caption", "--source", "0", "--fps", "10", "--max-frames", "3"], "--fps paces a file, env or synthetic source"),
])
def test_bad_sources_get_one_clear_line(argv, expect, capsys):
    one_clear_line(run_main(capsys, *argv), expect)


# --- every source frame, at the source's timing (issue 11, item 1) ----------------------------------

FPS, N = 20, 30  # an unusual rate, so an overlay written at any other rate shows
BIT = 16  # the frame index is drawn as 8 bits, black or white 16x16 blocks in the top 32 rows


def _block(b: int, margin: int = 0) -> tuple[slice, slice]:
    """Where bit ``b`` is drawn in a 64x64 frame (``margin`` px in from the edges)."""
    y, x = divmod(b, 4)
    return slice(y * BIT + margin, (y + 1) * BIT - margin), slice(x * BIT + margin, (x + 1) * BIT - margin)


def _stamp(rgb: np.ndarray, index: int) -> np.ndarray:
    out = rgb.copy()
    for b in range(8):
        out[_block(b)] = 255 if index >> b & 1 else 0
    return out


def _index(image: np.ndarray) -> int:
    """The index stamped on a frame (source or overlay, any scale) by ``_stamp``."""
    small = cv2.resize(image, (64, 64), interpolation=cv2.INTER_AREA)
    return sum(1 << b for b in range(8) if small[_block(b, margin=4)].mean() > 128)


def _read(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    fps, images = cap.get(cv2.CAP_PROP_FPS), []
    while (got := cap.read())[0]:
        images.append(got[1])
    cap.release()
    return images, fps


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """An N-frame clip at FPS of synthetic scenes, each frame carrying its index."""
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    frames, _ = SceneStream(9).take(N)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), FPS, (64, 64))
    for i, f in enumerate(frames):
        writer.write(cv2.cvtColor(_stamp(f, i), cv2.COLOR_RGB2BGR))
    writer.release()
    images, fps = _read(path)
    assert fps == FPS and [_index(im) for im in images] == list(range(N))  # the stamps survive mp4v
    return path


@pytest.fixture(scope="module")
def clip_captions(clip) -> list[str]:
    """The shipped captioner's caption of every frame of the clip, in order, in this process."""
    from agent.perception.live import DEFAULT_CHECKPOINT, LiveCaptioner

    captioner = LiveCaptioner(DEFAULT_CHECKPOINT)
    return [captioner.caption(cv2.cvtColor(im, cv2.COLOR_BGR2RGB)) for im in _read(clip)[0]]


_SLOW = """import sys, time
from agent.perception.live import LiveCaptioner
caption = LiveCaptioner.caption
LiveCaptioner.caption = lambda self, rgb, gap=1: (time.sleep({delay}), caption(self, rgb, gap))[1]
from launch.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_slow(*args: str, delay: float = 0.0) -> subprocess.CompletedProcess:
    """The real CLI with a captioner ``delay`` seconds slower per frame: a busy machine."""
    return subprocess.run([sys.executable, "-c", _SLOW.format(delay=delay), *args], capture_output=True,
                          text=True, timeout=300)


def _changes(captions: list[str]) -> list[tuple[int, str]]:
    return [(i, c) for i, c in enumerate(captions) if i == 0 or c != captions[i - 1]]


@pytest.mark.parametrize("flags, delay, frames", [
    ([], 0.08, N),                            # a captioner slower than the clip: < 12 frames/s < 20
    (["--fps", "400"], 0.0, N),               # frames offered far faster than the captioner goes
    (["--max-frames", "12"], 0.08, 12),       # --max-frames counts source frames
], ids=["slow-captioner", "fps-400", "max-frames"])
def test_a_file_is_captioned_frame_by_frame_at_its_own_timing(clip, clip_captions, tmp_path, flags, delay, frames):
    jsonl, video = tmp_path / "c.jsonl", tmp_path / "overlay.mp4"
    summary = _summary(run_slow("caption", "--source", str(clip), "--jsonl", str(jsonl), "--out", str(video),
                                "--json", *flags, delay=delay))
    images, fps = _read(video)
    assert fps == FPS and [_index(im) for im in images] == list(range(frames))
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert all(e["t"] == round(e["frame"] / FPS, 4) for e in events)
    # the same captioner over the clip's frames, every one in order, changes caption at the same frames
    assert [(e["frame"], e["caption"]) for e in events] == _changes(clip_captions[:frames])
    assert (summary["frames_read"], summary["frames_captioned"], summary["frames_dropped"]) == (frames, frames, 0)
    assert summary["source_fps"] == FPS


def test_realtime_drops_frames_yet_keeps_the_source_timing(clip, tmp_path):
    jsonl, video = tmp_path / "c.jsonl", tmp_path / "overlay.mp4"
    summary = _summary(run_slow("caption", "--source", str(clip), "--realtime", "--max-frames", "24",
                                "--jsonl", str(jsonl), "--out", str(video), "--json", delay=0.15))
    assert summary["frames_read"] == 24 and summary["frames_dropped"] > 0
    assert summary["frames_captioned"] + summary["frames_dropped"] == 24
    images, fps = _read(video)  # a dropped frame repeats the last captioned one: still 24 frames at FPS
    assert fps == FPS and len(images) == 24
    shown = [_index(im) for im in images]  # image i: the newest captioned frame ≤ i (the first before it)
    assert shown == sorted(shown) and all(s <= max(i, shown[0]) for i, s in enumerate(shown))
    assert len(set(shown)) == summary["frames_captioned"]
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert {e["frame"] for e in events} <= set(shown)  # captions change only at frames captioned
    assert all(e["t"] == round(e["frame"] / FPS, 4) for e in events)


@pytest.mark.parametrize("source", ["synthetic", "env:CartPole-v1"])
def test_synthetic_and_env_sources_give_every_frame_by_default(tmp_path, source):
    jsonl = tmp_path / "c.jsonl"
    summary = _summary(run_slow("caption", "--source", source, "--max-frames", "15", "--jsonl", str(jsonl),
                                "--json", delay=0.08))
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert max(e["frame"] for e in events) < 15  # source frames 0-14, none skipped to keep pace
    assert (summary["frames_read"], summary["frames_captioned"], summary["frames_dropped"]) == (15, 15, 0)


# --- outputs checked before any work (issue 11, item 2) -----------------------------------------------

@pytest.mark.parametrize("flag, where, expect", [
    ("--jsonl", "no/such/dir/c.jsonl", "no such directory"),
    ("--jsonl", ".", "is a directory"),
    ("--jsonl", "a-file/c.jsonl", "is not a directory"),
    ("--out", "overlay.txt", "unknown video extension '.txt'"),
    ("--out", "no/such/dir/overlay.mp4", "no such directory"),
], ids=["jsonl-missing-dir", "jsonl-is-dir", "jsonl-under-a-file", "out-txt", "out-missing-dir"])
def test_bad_output_paths_get_one_line_before_any_work(tmp_path, capsys, flag, where, expect):
    (tmp_path / "a-file").write_text("")
    before = sorted(tmp_path.rglob("*"))
    other = ("--out", str(tmp_path / "overlay.mp4")) if flag == "--jsonl" else ("--jsonl", str(tmp_path / "c.jsonl"))
    proc = run_main(capsys, "caption", "--max-frames", "30", flag, str(tmp_path / where), *other)
    one_clear_line(proc, f"{flag} ")
    assert expect in proc.stderr and proc.returncode == 2
    assert proc.stdout == "" and sorted(tmp_path.rglob("*")) == before  # nothing captioned, nothing written


# --- an env's own captioner (issue 11, item 3) ---------------------------------------------------------

SHIPPED = Path(__file__).parents[1] / "agent" / "perception" / "checkpoints"


@pytest.mark.parametrize("flags, checkpoint", [
    ([], "captioner-cartpole.pt"),                                      # shipped for CartPole-v1
    (["--checkpoint", str(SHIPPED / "captioner.pt")], "captioner.pt"),  # the flag wins
])
def test_an_env_source_uses_the_envs_shipped_captioner(tmp_path, flags, checkpoint):
    from agent.perception.train import checkpoint_grammar

    jsonl = tmp_path / "c.jsonl"
    summary = _summary(run_here("caption", "--source", "env:CartPole-v1", "--max-frames", "15", "--jsonl", str(jsonl),
                               "--json", *flags))
    grammars = {name: set(checkpoint_grammar(SHIPPED / name)) for name in ("captioner.pt", "captioner-cartpole.pt")}
    assert grammars["captioner.pt"].isdisjoint(grammars["captioner-cartpole.pt"])  # captions tell them apart
    captions = [json.loads(line)["caption"] for line in jsonl.read_text().splitlines()]
    assert captions and set(captions) <= grammars[checkpoint]
    assert Path(summary["checkpoint"]).name == checkpoint
