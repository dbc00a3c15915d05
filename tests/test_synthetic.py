"""Tests of envs/synthetic.py: the captioned scenes, measured from their pixels, not the generator.

Objects are found as connected regions brighter than the noise ceiling, so these tests check what a
model sees: colours at the centres, box sizes, centroid motion, left-to-right order and gaps.
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass

import cv2
import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs.synthetic import (
    COLORS,
    MOTIONS,
    SHAPES,
    FrameTruth,
    SceneConfig,
    SceneStream,
    StreamBatch,
    SyntheticSceneEnv,
    all_captions,
    batch_streams,
    caption_of,
)

NOISE_MAX = 30
JITTER = 20
STEPS = {"moves left": (-1, 0), "moves right": (1, 0), "moves up": (0, -1), "moves down": (0, 1),
         "stays still": (0, 0)}


@dataclass
class Blob:
    """One bright connected region of a frame: weighted centroid, box, area, RGB at the centroid."""

    cx: float
    cy: float
    x: int
    y: int
    w: int
    h: int
    area: int  # pixels brighter than the noise
    rgb: np.ndarray


@dataclass
class Segment:
    """A complete segment of a stream: its truths and, per frame, its blobs in caption order."""

    truths: list[FrameTruth]
    blobs: list[list[Blob]]  # [frame][slot], slots tracked from the first frame's left-to-right


def find_blobs(frame: np.ndarray) -> list[Blob]:
    """The regions brighter than the noise, centroids weighted by brightness above the noise."""
    bright = frame.max(axis=2).astype(np.int32)
    mask = (bright > NOISE_MAX).astype(np.uint8)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    weight, flat = np.clip(bright - NOISE_MAX, 0, None).ravel(), labels.ravel()
    ys, xs = np.indices(bright.shape)
    total, sum_x, sum_y = (np.bincount(flat, weight * v, count)[1:]
                           for v in (1, xs.ravel(), ys.ravel()))
    return [Blob(x, y, *box, frame[round(y), round(x)].astype(int))
            for x, y, box in zip(sum_x / total, sum_y / total, stats[1:, :5])]


def segments_of(frames: np.ndarray, truths: list[FrameTruth]) -> list[Segment]:
    """The complete segments, each object tracked frame to frame by nearest centroid."""
    out: list[Segment] = []
    start = next(i for i, t in enumerate(truths) if t.frame_in_segment == 0)
    while start + truths[start].segment_length <= len(truths):
        span = range(start, start + truths[start].segment_length)
        first = sorted(find_blobs(frames[start]), key=lambda b: (round(2 * b.cx), b.cy))
        tracked = [first]
        for i in span[1:]:
            found = find_blobs(frames[i])
            assert len(found) == len(first), f"frame {i}: {len(found)} blobs, {len(first)} objects"
            tracked.append([min(found, key=lambda b: (b.cx - p.cx) ** 2 + (b.cy - p.cy) ** 2)
                            for p in tracked[-1]])
        out.append(Segment([truths[i] for i in span], tracked))
        start = span[-1] + 1
    return out


@pytest.fixture(scope="module")
def stream() -> tuple[np.ndarray, list[FrameTruth]]:
    """A long stream (~250 segments) shared by the statistical tests."""
    return SceneStream(seed=11).take(4000)


@pytest.fixture(scope="module")
def segments(stream) -> list[Segment]:
    """The long stream's complete segments, objects found and tracked from the pixels."""
    return segments_of(*stream)


def test_same_seed_same_stream_and_different_seeds_differ() -> None:
    frames_a, truths_a = SceneStream(3).take(200)
    frames_b, truths_b = SceneStream(3).take(200)
    frames_c, truths_c = SceneStream(4).take(200)
    assert np.array_equal(frames_a, frames_b) and truths_a == truths_b
    assert not np.array_equal(frames_a, frames_c)
    assert [t.caption for t in truths_a] != [t.caption for t in truths_c]


def test_take_iteration_and_batches_continue_one_stream() -> None:
    want_frames, want_truths = SceneStream(5).take(70)
    stream = SceneStream(5)
    parts = [stream.take(1), stream.take(29), stream.take(40)]
    assert np.array_equal(np.concatenate([f for f, _ in parts]), want_frames)
    assert sum((t for _, t in parts), []) == want_truths
    for (frame, truth), want, want_truth in zip(iter(SceneStream(5)), want_frames, want_truths):
        assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8
        assert np.array_equal(frame, want) and truth == want_truth
    batch = StreamBatch([5, 6])
    (head, head_truths), (tail, tail_truths) = batch.next(30), batch.next(40)
    assert head.shape == (2, 30, 64, 64, 3) and tail.shape == (2, 40, 64, 64, 3)
    assert np.array_equal(np.concatenate([head[0], tail[0]]), want_frames)
    assert head_truths[0] + tail_truths[0] == want_truths
    whole, whole_truths = batch_streams([5, 6], 70)
    assert np.array_equal(whole[1], np.concatenate([head[1], tail[1]]))
    assert whole_truths[1] == head_truths[1] + tail_truths[1]


def test_segments_have_legal_lengths_and_consistent_positions(stream) -> None:
    _, truths = stream
    assert truths[0].segment == 0 and truths[0].frame_in_segment == 0
    for prev, cur in zip(truths, truths[1:]):
        assert prev.is_last == (prev.frame_in_segment == prev.segment_length - 1)
        if prev.is_last:
            assert (cur.segment, cur.frame_in_segment) == (prev.segment + 1, 0)
        else:
            assert (cur.segment, cur.frame_in_segment) == (prev.segment, prev.frame_in_segment + 1)
            assert (cur.caption, cur.objects, cur.segment_length) == (
                prev.caption, prev.objects, prev.segment_length)
    lengths = Counter(t.segment_length for t in truths if t.is_last)
    assert set(lengths) == set(range(8, 25))  # both ends occur: no off-by-one


def test_captions_follow_the_grammar_and_cover_it(stream) -> None:
    _, truths = stream
    grammar = set(all_captions())
    lasts = [t for t in truths if t.is_last]
    for t in lasts:
        assert t.caption in grammar and t.caption == caption_of(t.objects)
    two = sum(len(t.objects) == 2 for t in lasts) / len(lasts)
    assert 0.4 < two < 0.6 and {len(t.objects) for t in lasts} == {1, 2}
    objects = [o for t in lasts for o in t.objects]
    assert {o.color for o in objects} == set(COLORS)
    assert {o.shape for o in objects} == set(SHAPES)
    assert {o.motion for o in objects} == set(MOTIONS)
    assert {o.size for o in objects} == set(range(8, 17))
    assert all((o.speed == 0) == (o.motion == "stays still") for o in objects)
    assert {o.speed for o in objects} == {0, 1, 2, 3}


def test_all_captions_is_the_whole_grammar() -> None:
    captions = all_captions()
    assert len(captions) == len(set(captions)) == 75 + 75 * 75
    assert captions == sorted(captions)
    assert "a red circle moves left and a blue square stays still" in captions
    assert "a white triangle stays still" in captions


def test_background_is_fresh_uniform_noise_in_range(stream) -> None:
    frames, truths = stream
    samples = []
    for i in range(0, 400, 7):
        objects = np.zeros(frames.shape[1:3], bool)
        blobs = find_blobs(frames[i])
        assert len(blobs) == len(truths[i].objects)  # no bright pixel outside the objects
        for b in blobs:
            objects[max(b.y - 1, 0):b.y + b.h + 1, max(b.x - 1, 0):b.x + b.w + 1] = True
        samples.append(frames[i][~objects])
    values = np.concatenate(samples)
    assert values.min() == 0 and values.max() == NOISE_MAX
    counts = np.bincount(values.ravel(), minlength=NOISE_MAX + 1)
    assert np.all(np.abs(counts / counts.mean() - 1) < 0.1)  # uniform over 0..30
    same = np.mean(frames[1:50, :8, :8] == frames[:49, :8, :8])  # a corner, mostly background
    assert same < 0.1  # drawn fresh each frame (1/31 equal by chance)


def test_objects_have_their_colour_and_size_and_stay_in_frame(segments) -> None:
    deviations = []
    for seg in segments:
        for frame_blobs in seg.blobs:
            for blob, obj in zip(frame_blobs, seg.truths[0].objects):
                assert obj.size - 1 <= blob.w <= obj.size and obj.size - 1 <= blob.h <= obj.size
                deviations.append(blob.rgb - np.array(COLORS[obj.color]))
    deviations = np.array(deviations)
    assert np.abs(deviations).max() <= JITTER + 1  # +1: rounding of the blend
    assert deviations.min() <= -15 and deviations.max() >= 15  # the jitter is there


def test_shapes_look_like_their_names(segments) -> None:
    for seg in segments:
        for blob, obj in zip(seg.blobs[0], seg.truths[0].objects):
            fill = blob.area / (blob.w * blob.h)  # seen: square 1, circle .84-.94, triangle .56-.63
            looks = {"square": fill > 0.97, "circle": 0.75 < fill < 0.97, "triangle": fill < 0.7}
            assert looks[obj.shape], (obj, fill)
            if obj.shape == "triangle":  # pointing up: the mass sits low in the box
                assert blob.cy - (blob.y + (blob.h - 1) / 2) > obj.size / 10


def test_two_objects_keep_a_gap_and_are_ordered_left_to_right(segments) -> None:
    pairs = [seg for seg in segments if len(seg.truths[0].objects) == 2]
    assert len(pairs) > 50
    for seg in pairs:
        first = seg.blobs[0]
        assert (round(2 * first[0].cx), first[0].cy) <= (round(2 * first[1].cx), first[1].cy)
        for a, b in seg.blobs:
            gap_x = max(b.x - (a.x + a.w), a.x - (b.x + b.w))
            gap_y = max(b.y - (a.y + a.h), a.y - (b.y + b.h))
            assert max(gap_x, gap_y) >= 1


def test_objects_move_by_their_speed_in_the_stated_direction(segments) -> None:
    seen = Counter()
    for seg in segments:
        for slot, obj in enumerate(seg.truths[0].objects):
            path = np.array([[blobs[slot].cx, blobs[slot].cy] for blobs in seg.blobs])
            velocity = np.polyfit(np.arange(len(path)), path, 1)[0]
            want = obj.speed * np.array(STEPS[obj.motion])
            assert np.allclose(velocity, want, atol=0.1), (seg.truths[0].caption, velocity, want)
            seen[len(seg.truths[0].objects), obj.motion] += 1
    assert len(seen) == 10  # every motion checked in 1- and 2-object segments


def test_other_frame_sizes_and_bad_configs() -> None:
    frames, truths = SceneStream(0, SceneConfig(frame_size=48)).take(100)
    assert frames.shape == (100, 48, 48, 3)
    for seg in segments_of(frames, truths):
        assert len(seg.blobs[0]) == len(seg.truths[0].objects)
    with pytest.raises(ValueError):
        SceneConfig(frame_size=32)  # a 16 px object cannot cross it in 24 frames
    with pytest.raises(ValueError):
        SceneConfig(min_segment=10, max_segment=9)


def test_env_streams_frames_with_the_truth_in_info() -> None:
    env = SyntheticSceneEnv()
    with pytest.raises(RuntimeError):
        env.step(0)
    want_frames, want_truths = SceneStream(7).take(30)
    obs, info = env.reset(seed=7)
    assert np.array_equal(obs["frame"], want_frames[0]) and info["truth"] == want_truths[0]
    for want, truth in zip(want_frames[1:], want_truths[1:]):
        obs, reward, terminated, truncated, info = env.step(0)
        assert obs in env.observation_space and np.array_equal(obs["frame"], want)
        assert (reward, terminated, truncated) == (0.0, False, False)
        assert info["truth"] == truth and info["caption"] == truth.caption
    with pytest.raises(ValueError):
        env.step(1)
    first, _ = env.reset()
    second, _ = env.reset()
    assert not np.array_equal(first["frame"], second["frame"])  # unseeded resets start new streams
    assert env.action_space == gymnasium.spaces.Discrete(1)


def test_env_passes_gymnasium_checker() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_env(SyntheticSceneEnv(), skip_render_check=True)
