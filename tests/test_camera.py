"""A busy live camera, simulated: each delivered frame is the source frame its gaps say, with that
frame's truth, and each segment is scored at the last frame of it that was delivered."""

import numpy as np

from agent.perception.camera import CameraConfig, CameraStreams
from agent.perception.data import open_batch
from envs.synthetic import SceneStream

CLEAN = CameraConfig(busy=0.6, repeat=0.1, jpeg_share=0.0, brightness=0.0, contrast=(1.0, 1.0), noise=0.0)


def test_delivered_frames_are_the_source_frames_their_gaps_name_with_their_truths():
    seeds = [11, 12]
    camera = open_batch("synthetic", seeds, 64, CLEAN)
    chunks = [camera.next(20) for _ in range(3)]
    for b, seed in enumerate(seeds):
        gaps = np.concatenate([[t.gap for t in truths[b]] for _, truths in chunks])
        index = np.cumsum(gaps) - 1
        source, truths = SceneStream(seed, camera.streams[b].streams[0].cfg).take(int(index[-1]) + 1)
        delivered = np.concatenate([frames[b] for frames, _ in chunks])
        timed = [t for _, chunk in chunks for t in chunk[b]]
        assert (gaps == 0).any() and (gaps > 1).any() and gaps.max() <= CLEAN.max_skip + 1
        assert np.array_equal(delivered, source[index])
        assert [t.caption for t in timed] == [truths[i].caption for i in index]
        # scored: the last delivered frame of each segment (the last chunk's end aside)
        seg = np.array([truths[i].segment for i in index])
        want = [j for j in range(len(index) - 1) if seg[j + 1] != seg[j]]
        got = [j for j, t in enumerate(timed[:-1]) if t.is_last]
        assert got == want


def test_a_rough_camera_changes_the_pixels_but_not_the_truth():
    rough = open_batch("synthetic", [3], 64, CameraConfig(busy=0.0, repeat=0.0, jpeg_share=1.0))
    frames, truths = rough.next(16)
    source, clean = SceneStream(3, rough.streams[0].streams[0].cfg).take(16)
    assert [t.gap for t in truths[0]] == [1] * 16 and [t.caption for t in truths[0]] == [t.caption for t in clean]
    diff = np.abs(frames[0].astype(int) - source.astype(int))
    assert diff.mean() > 2 and np.corrcoef(frames[0].ravel(), source.ravel())[0, 1] > 0.8
