"""`thalamus caption` on real sources: the synthetic stream, a video file written with OpenCV."""

import json

import cv2
import pytest

from conftest import run_cli
from envs.synthetic import SceneStream, all_captions


def test_synthetic_stream_captions_are_mostly_right_and_jsonl_is_well_formed(tmp_path):
    jsonl, video = tmp_path / "c.jsonl", tmp_path / "overlay.mp4"
    proc = run_cli("caption", "--source", "synthetic", "--seed", "5", "--max-frames", "240", "--fps", "60",
                   "--jsonl", str(jsonl), "--out", str(video), "--json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["frames"] == 240
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert events[0]["frame"] == 0 and all(e["caption"] in set(all_captions()) for e in events)
    frames = [e["frame"] for e in events]
    assert frames == sorted(set(frames))  # one line per change, in order
    # the caption in effect at each segment's last frame (seen frames only) against the truth
    _, truths = SceneStream(5).take(240)
    hits = total = 0
    for i, truth in enumerate(truths):
        if truth.is_last:
            in_effect = [e["caption"] for e in events if e["frame"] <= i][-1]
            hits += in_effect == truth.caption
            total += 1
    assert total >= 8 and hits / total >= 0.6  # frames dropped under load make it harder than the benchmark
    cap = cv2.VideoCapture(str(video))
    ok, image = cap.read()
    assert ok and image.shape[0] >= 256


def test_video_file_source(tmp_path):
    path = tmp_path / "clip.mp4"
    frames, _ = SceneStream(9).take(60)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 64))
    for f in frames:
        writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
    writer.release()
    proc = run_cli("caption", "--source", str(path), "--fps", "600", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1])["frames"] + \
        json.loads(proc.stdout.strip().splitlines()[-1])["dropped"] == 60


@pytest.mark.parametrize("argv, expect", [
    (["caption", "--source", "7"], "cannot open camera 7"),
    (["caption", "--source", "/no/such/clip.mp4"], "no video file at '/no/such/clip.mp4'"),
    (["caption", "--max-frames", "0"], "--max-frames must be positive"),
    (["caption", "--show"], "--show needs a display"),
])
def test_bad_sources_get_one_clear_line(argv, expect):
    proc = run_cli(*argv)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and expect in lines[0], proc.stderr
