"""A folder of captioned clips as training data: the reader, its errors, and `thalamus train captioner
--data DIR` end to end (a checkpoint that says only the folder's captions, in words of its own)."""

import itertools
import json
import re
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import run_here, run_main

from agent.perception.grammar import VOCAB, Vocab
from envs.clips import ClipBatch, ClipDataError, clip_grammar, heldout_dir, read_captions, scan_clips

RED, BLUE, GREEN = (200, 40, 40), (40, 60, 200), (40, 180, 60)
# per clip: (frames, [(first frame, caption, background RGB)]); dot's frames 0-2 are unlabelled
CLIPS = {
    "blob": (20, [(0, "a purple blob drifts right", RED), (12, "a purple blob stays still", BLUE)]),
    "dot": (10, [(3, "a green dot waits", GREEN)]),
}


def _write_clip(root: Path, name: str, n: int, segments: list, lines: list[str] | None = None) -> None:
    """A 64x48 mp4 whose background is each segment's colour with a purple square moving right,
    and its captions as `thalamus caption --jsonl` writes them (or ``lines`` as given)."""
    writer = cv2.VideoWriter(str(root / f"{name}.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), 30, (64, 48))
    for i in range(n):
        rgb = segments[0][2]  # unlabelled frames before the first segment look like it
        for start, _, color in segments:
            rgb = color if start <= i else rgb
        frame = np.full((48, 64, 3), rgb, np.uint8)
        frame[18:30, 8 + i: 20 + i] = (160, 40, 200)
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()
    if lines is None:
        lines = [json.dumps({"frame": s, "t": s / 30, "caption": c}) for s, c, _ in segments]
    (root / f"{name}.jsonl").write_text("\n".join(lines) + "\n")


@pytest.fixture
def clips_dir(tmp_path: Path) -> Path:
    root = tmp_path / "clips"
    root.mkdir()
    for name, (n, segments) in CLIPS.items():
        _write_clip(root, name, n, segments)
    return root


def _expected(clip: str, frame: int) -> tuple[str, tuple[int, int, int], bool]:
    """The caption, background colour and is_last of a clip frame, from CLIPS."""
    n, segments = CLIPS[Path(clip).stem]
    k = max(i for i, (start, _, _) in enumerate(segments) if start <= frame)
    ends = frame == n - 1 or (k + 1 < len(segments) and segments[k + 1][0] == frame + 1)
    return segments[k][1], segments[k][2], ends


def test_clip_batch_gives_each_frame_its_caption(clips_dir):
    frames, truths = ClipBatch(clips_dir, [0, 1], frame_size=32).next(60)
    assert frames.shape == (2, 60, 32, 32, 3) and frames.dtype == np.uint8
    for stream_frames, stream in zip(frames, truths):
        for frame, truth in zip(stream_frames, stream):
            caption, rgb, ends = _expected(truth.clip, truth.frame)
            assert (truth.caption, truth.is_last) == (caption, ends)
            corner = frame[:4, :4].reshape(-1, 3).mean(0)  # background, away from the square
            assert np.abs(corner - rgb).max() < 30
        # whole clips, one after another: a clip's labelled frames in order, then the next clip's
        seen = [(Path(t.clip).stem, t.frame) for t in stream]
        for (c0, f0), (c1, f1) in itertools.pairwise(seen):
            next_clip = f0 == CLIPS[c0][0] - 1 and f1 == CLIPS[c1][1][0][0]
            assert (c1 == c0 and f1 == f0 + 1) or next_clip
    assert min(t.frame for stream in truths for t in stream if t.clip == "dot.mp4") == 3
    again = ClipBatch(clips_dir, [0, 1], frame_size=32).next(60)[1]
    assert [[(t.clip, t.frame) for t in s] for s in again] == [[(t.clip, t.frame) for t in s] for s in truths]
    assert clip_grammar(clips_dir) == sorted(c for _, segs in CLIPS.values() for _, c, _ in segs)


def test_jsonl_written_by_thalamus_caption_reads_back(clips_dir):
    rows = read_captions(clips_dir / "blob.jsonl")
    assert rows == [(1, 0, "a purple blob drifts right"), (2, 12, "a purple blob stays still")]
    (clips_dir / "blob.jsonl").write_text('{"frame": 0, "caption": "a  purple blob drifts right"}\n\n'
                                          '{"frame": 5, "caption": "a purple blob drifts right"}\n'
                                          '{"frame": 12, "caption": "a purple blob stays still", "t": 0.4}\n')
    assert [(f, c) for _, f, c in read_captions(clips_dir / "blob.jsonl")] == \
        [(0, "a purple blob drifts right"), (12, "a purple blob stays still")]  # spaces and repeats folded


@pytest.mark.parametrize("lines, message", [
    (['{"frame": 0, "caption": "a purple blob"}', '{"frame": 4, "caption": "a purple'], "blob.jsonl:2: not valid JSON"),
    (['{"frame": 5, "caption": "a purple blob"}', '{"frame": 5, "caption": "a blob"}'],
     "blob.jsonl:2: frame 5 does not come after the previous line's frame 5"),
    (['{"frame": 0, "caption": "one two three four five six seven eight nine ten eleven twelve"}'],
     "blob.jsonl:1: caption 'one two three four five six seven eight nine ten eleven twelve' has 12 words"),
    (['{"frame": "0", "caption": "a purple blob"}'], 'blob.jsonl:1: "frame" must be a whole number'),
    (['{"frame": 0, "caption": "a <eos> blob"}'], "blob.jsonl:1: caption word '<eos>' is reserved"),
    (['{"frame": 0, "caption": "a purple blob"}', '{"frame": 99, "caption": "a blob"}'],
     "blob.jsonl:2: frame 99 is past the end of blob.mp4 (20 frames"),
    ([], "blob.jsonl: no captions"),
])
def test_malformed_captions_name_file_and_line(tmp_path, lines, message):
    _write_clip(tmp_path, "blob", 20, CLIPS["blob"][1], lines)
    with pytest.raises(ClipDataError, match="^" + re.escape(f"{tmp_path}/blob.jsonl")) as info:
        scan_clips(tmp_path)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_missing_files_are_named(tmp_path, clips_dir):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ClipDataError, match="no videos in"):
        scan_clips(tmp_path / "empty")
    with pytest.raises(ClipDataError, match="does not exist"):
        scan_clips(tmp_path / "nowhere")
    (clips_dir / "dot.jsonl").unlink()
    with pytest.raises(ClipDataError, match="dot.mp4 has no captions file dot.jsonl"):
        scan_clips(clips_dir)
    (clips_dir / "dot.mp4").unlink()
    (clips_dir / "extra.jsonl").write_text('{"frame": 0, "caption": "x"}\n')
    with pytest.raises(ClipDataError, match="extra.jsonl has no video beside it"):
        scan_clips(clips_dir)


def test_heldout_clips_must_use_training_captions(clips_dir):
    assert heldout_dir(clips_dir) is None
    held = clips_dir / "heldout"
    held.mkdir()
    _write_clip(held, "blob2", 20, CLIPS["blob"][1])
    assert heldout_dir(clips_dir) == held
    _write_clip(held, "cat", 10, [(0, "a cat sleeps", RED)])
    with pytest.raises(ClipDataError, match="cat.jsonl: caption 'a cat sleeps' is in no clip of"):
        heldout_dir(clips_dir)


def test_vocab_keeps_built_in_ids_and_appends_new_words_sorted():
    vocab = Vocab.for_captions(["a purple blob drifts right", "the cart moves left"])
    assert vocab.words == VOCAB + ("blob", "drifts", "purple")
    assert vocab.encode("a purple blob")[0] == VOCAB.index("a")
    assert vocab.decode(vocab.table(["a purple blob drifts right"], 8)[0]) == "a purple blob drifts right"
    assert Vocab.for_captions(["the pole leans left"]) == Vocab()
    with pytest.raises(ValueError, match="'purple' is not in the vocabulary"):
        Vocab().encode("a purple blob")


def test_train_on_a_clip_folder_then_caption_a_clip(clips_dir, tmp_path):
    from agent.perception.decode import CaptionDecoding
    from agent.perception.train import checkpoint_grammar, load_checkpoint

    out = tmp_path / "mine.pt"
    proc = run_here("train", "captioner", "--data", str(clips_dir), "--steps", "30", "--streams", "2",
                   "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout.strip().splitlines()[-1])
    assert metrics["segments"] > 0 and set(metrics) == {"exact", "segments", "train_s", "frames", "skipped_steps"}
    assert metrics["skipped_steps"] == 0  # every step's gradient was finite
    captions = clip_grammar(clips_dir)
    assert checkpoint_grammar(out) == captions
    model = load_checkpoint(out)
    assert model.cfg.vocab == Vocab.for_captions(captions).words
    torch.manual_seed(0)
    said = CaptionDecoding(model, captions, "cpu").greedy(torch.randn(64, model.cfg.d_model) * 3)
    assert set(said) <= set(captions)
    # its `thalamus caption --jsonl` output is training data again
    jsonl = tmp_path / "said.jsonl"
    proc = run_here("caption", "--checkpoint", str(out), "--source", str(clips_dir / "blob.mp4"),
                   "--fps", "600", "--jsonl", str(jsonl), "--json")
    assert proc.returncode == 0, proc.stderr
    assert {c for _, _, c in read_captions(jsonl)} <= set(captions)


@pytest.mark.parametrize("folder, expect", [
    ("missing", "does not exist"),
    ("empty", "no videos in"),
    ("malformed", 'blob.jsonl:1: "caption" must be a string'),
])
def test_bad_folder_is_one_line(tmp_path, folder, expect, capsys):
    root = tmp_path / "data"
    if folder != "missing":
        root.mkdir()
    if folder == "malformed":
        _write_clip(root, "blob", 20, CLIPS["blob"][1], ['{"frame": 0}'])
    proc = run_main(capsys, "train", "captioner", "--data", str(root), "--steps", "1", "--out", str(tmp_path / "x.pt"))
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("thalamus: error: --data: ") and expect in lines[0], proc.stderr
    assert not (tmp_path / "x.pt").exists()
