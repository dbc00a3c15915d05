"""Captions decoded off the acting path: every step delivered once, in order, with its lag."""

import threading

import numpy as np
import pytest
import torch

from agent.perception.caption_thread import CaptionThread


def _decode_waiting_for(gate: threading.Event, calls: list):
    def decode(features: torch.Tensor) -> np.ndarray:
        gate.wait(5)
        calls.append(len(features))
        return (features[:, :2] * 10).to(torch.int16).numpy()
    return decode


def test_a_slow_decoder_catches_up_in_batches_and_delivers_every_step_in_order():
    gate, calls, got = threading.Event(), [], []
    thread = CaptionThread(_decode_waiting_for(gate, calls), lambda step, tokens, lag: got.append((step, tokens, lag)))
    for step in range(5):  # the first decode blocks until the gate opens: the rest pile up meanwhile
        thread.submit(step, torch.full((3, 4), float(step)))
    gate.set()
    thread.close()
    assert [s for s, _, _ in got] == list(range(5))
    assert all(np.array_equal(t, np.full((3, 2), 10 * s, np.int16)) for s, t, _ in got)
    assert sum(calls) == 15 and len(calls) < 5  # steps that waited were decoded together
    lags = [lag for _, _, lag in got]
    assert lags[0] >= 1 and lags[-1] == 0 and lags == sorted(lags, reverse=True)
    assert thread.lag_summary()["max"] == max(lags) and thread.lag_summary()["count"] == 5
    assert np.array_equal(thread.latest, got[-1][1])


def test_submit_waits_once_max_pending_steps_are_waiting():
    gate, calls = threading.Event(), []
    thread = CaptionThread(_decode_waiting_for(gate, calls), lambda *a: None, max_pending=2)
    thread.submit(0, torch.zeros(1, 2))
    while not thread._busy:  # step 0 is being decoded (held at the gate)
        pass
    thread.submit(1, torch.zeros(1, 2))
    thread.submit(2, torch.zeros(1, 2))
    third = threading.Thread(target=thread.submit, args=(3, torch.zeros(1, 2)))
    third.start()
    third.join(0.3)
    assert third.is_alive()  # two steps wait: the third submission holds the acting thread
    gate.set()
    third.join(5)
    thread.close()
    assert not third.is_alive() and sum(calls) == 4


def test_a_decoding_error_reaches_the_acting_thread():
    def broken(features: torch.Tensor) -> np.ndarray:
        raise ValueError("bad grammar")

    thread = CaptionThread(broken, lambda *a: None)
    thread.submit(0, torch.zeros(1, 2))
    with pytest.raises(RuntimeError, match="caption decoding failed: ValueError: bad grammar"):
        thread.drain()
    with pytest.raises(RuntimeError, match="bad grammar"):
        thread.submit(1, torch.zeros(1, 2))
