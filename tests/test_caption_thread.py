"""Captions made off the acting path: every step delivered once, in order, with its lag."""

import os
import threading

import numpy as np
import pytest
import torch

from agent.perception.caption_thread import STARVED_S, CaptionThread


def _caption_waiting_for(gate: threading.Event, calls: list, gaps: list | None = None):
    def caption(frames: np.ndarray, frame_gaps: np.ndarray) -> np.ndarray:
        """[T, N, D] → [T, N, 2]: ten times each frame's first two numbers."""
        gate.wait(5)
        calls.append(frames.shape[0])
        if gaps is not None:
            gaps.extend(frame_gaps.tolist())
        return (frames[..., :2] * 10).astype(np.int16)
    return caption


def test_a_slow_captioner_catches_up_in_batches_and_delivers_every_step_in_order():
    gate, calls, got, ends = threading.Event(), [], [], []
    thread = CaptionThread(_caption_waiting_for(gate, calls),
                           lambda step, tokens, lag, skipped: got.append((step, tokens, lag)),
                           delivered=lambda: ends.append(len(got)))
    for step in range(5):  # the first call blocks until the gate opens: the rest pile up meanwhile
        thread.submit(step, np.full((3, 4), float(step)))
    gate.set()
    thread.close()
    assert [s for s, _, _ in got] == list(range(5))
    assert all(np.array_equal(t, np.full((3, 2), 10 * s, np.int16)) for s, t, _ in got)
    assert sum(calls) == 5 and len(calls) < 5  # steps that waited were captioned together
    assert ends == np.cumsum(calls).tolist()  # told once a call's steps are all delivered
    lags = [lag for _, _, lag in got]
    assert lags[0] >= 1 and lags[-1] == 0 and lags == sorted(lags, reverse=True)
    assert thread.lag_summary()["max"] == max(lags) and thread.lag_summary()["count"] == 5
    assert np.array_equal(thread.latest, got[-1][1])


def test_submit_waits_once_max_pending_steps_are_waiting():
    gate, calls = threading.Event(), []
    thread = CaptionThread(_caption_waiting_for(gate, calls), lambda *a: None, max_pending=2)
    thread.submit(0, np.zeros((1, 2)))
    while not thread._busy:  # step 0 is being captioned (held at the gate)
        pass
    thread.submit(1, np.zeros((1, 2)))
    thread.submit(2, np.zeros((1, 2)))
    third = threading.Thread(target=thread.submit, args=(3, np.zeros((1, 2))))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # two steps wait: the third submission holds the acting thread
    gate.set()
    third.join(5)
    thread.close()
    assert not third.is_alive() and sum(calls) == 4
    assert thread.starved_at is None  # a thread at normal priority is never replaced


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_an_idle_thread_that_keeps_acting_waiting_hands_captioning_to_a_normal_priority_one():
    gate, calls, got = threading.Event(), [], []
    thread = CaptionThread(_caption_waiting_for(gate, calls), lambda step, *a: got.append(step),
                           max_pending=2, idle=True)
    first = thread._thread
    assert thread.idle and os.sched_getscheduler(first.native_id) == os.SCHED_IDLE
    thread.submit(0, np.zeros((1, 2)))
    while not thread._busy:  # step 0 is being captioned (held at the gate, as a starved thread is)
        pass
    thread.submit(1, np.zeros((1, 2)))
    thread.submit(2, np.zeros((1, 2)))
    third = threading.Thread(target=thread.submit, args=(3, np.zeros((1, 2))))
    third.start()
    third.join(STARVED_S + 0.5)
    assert thread.starved_at == 3 and not thread.idle and thread._thread is not first
    assert os.sched_getscheduler(thread._thread.native_id) == os.SCHED_OTHER
    assert got == []  # the new thread waits for the old one's call: captions stay in order
    gate.set()
    third.join(5)
    first.join(5)  # the idle thread ended after its call
    thread.submit(4, np.zeros((1, 2)))
    thread.close()
    assert not first.is_alive() and got == [0, 1, 2, 3, 4] and calls[0] == 1


def test_a_thread_allowed_to_skip_reads_every_kth_waiting_frame_and_each_step_gets_a_caption():
    """A backlog is read every k-th step (k ≤ max_gap, the newest always), each read frame told its
    gap; every step still gets a caption, the next read frame's, in order and marked skipped."""
    gate, calls, gaps, got = threading.Event(), [], [], []
    thread = CaptionThread(_caption_waiting_for(gate, calls, gaps),
                           lambda step, tokens, lag, skipped: got.append((step, int(tokens[0, 0]), skipped)),
                           max_pending=12, max_gap=3)
    thread.submit(0, np.zeros((1, 2)))
    while not thread._busy:  # step 0 is being captioned (held at the gate)
        pass
    for step in range(1, 13):
        thread.submit(step, np.full((1, 2), float(step)))
    gate.set()
    thread.close()
    assert calls == [1, 4] and gaps == [1, 3, 3, 3, 3]  # of steps 1-12, every third back from the newest
    assert [s for s, _, _ in got] == list(range(13))
    assert [t for _, t, _ in got] == [0] + [30] * 3 + [60] * 3 + [90] * 3 + [120] * 3
    assert [s for s, _, skipped in got if not skipped] == [0, 3, 6, 9, 12] and thread.skipped == 8


def test_a_captioning_error_reaches_the_acting_thread():
    def broken(frames: np.ndarray, gaps: np.ndarray) -> np.ndarray:
        raise ValueError("bad grammar")

    thread = CaptionThread(broken, lambda *a: None)
    thread.submit(0, np.zeros((1, 2)))
    with pytest.raises(RuntimeError, match="captioning failed: ValueError: bad grammar"):
        thread.drain()
    with pytest.raises(RuntimeError, match="bad grammar"):
        thread.submit(1, np.zeros((1, 2)))


def test_steps_captioned_together_get_the_captions_of_one_frame_at_a_time():
    """The thread's catch-up call (T frames of every stream through the model at once, with their
    gaps) gives each frame the caption single streaming steps give it, and leaves the same states."""
    from agent.perception.live import LiveCaptioner, env_checkpoint

    checkpoint = env_checkpoint("CartPole-v1")
    frames = np.random.default_rng(0).integers(0, 256, (7, 3, 48, 48, 3), np.uint8)  # resized to 64
    single, together = LiveCaptioner(checkpoint, streams=3), LiveCaptioner(checkpoint, streams=3)
    gaps = np.array([1, 2, 1, 4, 3, 1, 5])  # frames skipped as a busy machine skips them
    one_by_one = np.stack([single.tokens(f, np.full(3, g)) for f, g in zip(frames, gaps)])
    at_once = np.concatenate([together.caption_steps(frames[:1], gaps[:1]),
                              together.caption_steps(frames[1:], gaps[1:])])
    assert at_once.shape == (7, 3, single.max_len) and np.array_equal(at_once, one_by_one)
    assert len({single.text(t) for t in one_by_one.reshape(-1, single.max_len)}) > 1
    for a, b in zip(single.state.layers, together.state.layers):
        assert torch.allclose(a, b, atol=1e-4)


def test_the_folded_captioner_says_what_the_trained_one_says():
    """LiveCaptioner folds BatchNorm into the convs for speed; the captions must not change."""
    from agent.perception.live import LiveCaptioner, env_checkpoint
    from agent.perception.train import load_checkpoint

    checkpoint = env_checkpoint("CartPole-v1")
    folded, plain = LiveCaptioner(checkpoint, streams=2), LiveCaptioner(checkpoint, streams=2)
    plain.model = load_checkpoint(checkpoint)
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.model.encoder.modules())
    frames = np.random.default_rng(1).integers(0, 256, (9, 2, 64, 64, 3), np.uint8)
    assert np.array_equal(folded.caption_steps(frames), plain.caption_steps(frames))


def test_the_bf16_encoder_says_what_the_fp32_one_says_on_renders():
    """On a CPU the encoder's convs may run in bf16 (the CaptionActor's choice where the CPU has bf16
    instructions); on held-out CartPole renders the captions stay those of fp32."""
    from agent.perception.data import open_batch
    from agent.perception.live import LiveCaptioner, env_checkpoint

    checkpoint = env_checkpoint("CartPole-v1")
    frames, truths = open_batch("env:CartPole-v1", [21, 22, 23], 64).next(96)
    steps = frames.transpose(1, 0, 2, 3, 4)  # [T, streams, ...]
    fp32 = LiveCaptioner(checkpoint, streams=3, cpu_bf16=False)
    bf16 = LiveCaptioner(checkpoint, streams=3, cpu_bf16=True)
    assert [c.model.encoder.conv[0].weight.dtype for c in (bf16, fp32)] == [torch.bfloat16, torch.float32]
    want = np.concatenate([fp32.caption_steps(steps[i:i + 8]) for i in range(0, 96, 8)])
    got = np.concatenate([bf16.caption_steps(steps[i:i + 8]) for i in range(0, 96, 8)])
    assert (got == want).all(-1).mean() >= 0.98
    right = np.mean([fp32.text(want[t, b]) == truths[b][t].caption for t in range(96) for b in range(3)])
    assert right >= 0.9  # the renders are ones the captioner reads: the comparison means something


def test_warming_up_leaves_the_streams_as_they_were():
    """``warm_up`` runs every call length once (on a GPU the kernels compile then) and puts the state
    back: the captions after it are those of a captioner that never warmed up, mid-stream too."""
    from agent.perception.live import LiveCaptioner, env_checkpoint

    checkpoint = env_checkpoint("CartPole-v1")
    frames = np.random.default_rng(2).integers(0, 256, (6, 2, 64, 64, 3), np.uint8)
    warmed, cold = LiveCaptioner(checkpoint, streams=2), LiveCaptioner(checkpoint, streams=2)
    assert np.array_equal(warmed.caption_steps(frames[:3]), cold.caption_steps(frames[:3]))
    warmed.warm_up(4)
    assert np.array_equal(warmed.caption_steps(frames[3:]), cold.caption_steps(frames[3:]))
    for a, b in zip(warmed.state.layers, cold.state.layers):
        assert torch.equal(a, b)


def test_the_compiled_captioner_says_what_the_eager_one_says_at_irregular_gaps():
    """``LiveCaptioner.compile`` runs a frame's step and its decode as one compiled function (the
    CaptionActor's choice for long CPU runs); on held-out CartPole renders that arrive 1-3 source frames
    apart its captions and streaming state stay those of the eager captioner."""
    from agent.perception.data import open_batch
    from agent.perception.live import LiveCaptioner, env_checkpoint

    checkpoint = env_checkpoint("CartPole-v1")
    gaps = np.random.default_rng(3).integers(1, 4, 64)
    seen = np.cumsum(gaps) - 1  # the source frames the camera delivers
    frames, truths = open_batch("env:CartPole-v1", [31, 32, 33], 64).next(int(seen[-1]) + 1)
    steps = frames[:, seen].transpose(1, 0, 2, 3, 4)  # [T, streams, ...]
    truths = [[stream[i] for i in seen] for stream in truths]
    eager, compiled = LiveCaptioner(checkpoint, streams=3), LiveCaptioner(checkpoint, streams=3)
    assert compiled.compile()
    want = np.concatenate([eager.caption_steps(steps[i:i + 4], gaps[i:i + 4]) for i in range(0, 64, 4)])
    got = np.concatenate([compiled.caption_steps(steps[i:i + 4], gaps[i:i + 4]) for i in range(0, 64, 4)])
    assert (got == want).all(-1).mean() >= 0.98
    for a, b in zip(eager.state.layers, compiled.state.layers):
        assert torch.allclose(a, b, atol=1e-4)
    right = np.mean([eager.text(want[t, b]) == truths[b][t].caption for t in range(64) for b in range(3)])
    assert right >= 0.9, right  # frames the captioner reads (timing told): the comparison means something
