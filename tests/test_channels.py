import threading
import time

import numpy as np
import pytest

from agent.channels import Channel, ChannelTimeout, LatencyMeter, Overflow


def test_block_waits_for_space_then_delivers_in_order():
    ch = Channel("steps", 2, Overflow.BLOCK)
    ch.put(1)
    ch.put(2)
    threading.Timer(0.1, ch.get).start()  # frees one slot later
    t0 = time.monotonic()
    ch.put(3, timeout=5)
    assert time.monotonic() - t0 >= 0.05
    assert [ch.get(), ch.get()] == [2, 3]
    assert ch.stats().dropped == 0


def test_block_times_out_on_a_stalled_consumer():
    ch = Channel("steps", 1, Overflow.BLOCK)
    ch.put("a")
    with pytest.raises(ChannelTimeout, match="consumer has stalled"):
        ch.put("b", timeout=0.05)
    with pytest.raises(ChannelTimeout, match="producer has stalled"):
        Channel("empty", 1).get(timeout=0.05)


def test_drop_oldest_keeps_newest_and_counts():
    ch = Channel("frames", 3, Overflow.DROP_OLDEST)
    for i in range(10):
        ch.put(i)
    assert ch.get_all() == [7, 8, 9]
    s = ch.stats()
    assert (s.put, s.got, s.dropped) == (10, 3, 7)


def test_drop_newest_keeps_oldest_and_counts():
    ch = Channel("feed", 2, Overflow.DROP_NEWEST)
    for i in range(5):
        ch.put(i)
    assert ch.get_all() == [0, 1] and ch.stats().dropped == 3


def test_latency_meter_percentiles():
    m = LatencyMeter()
    for ms in range(1, 101):
        m.add_ns(0, ms * 1_000_000)
    s = m.summary()
    assert s["count"] == 100
    assert s["p50_ms"] == pytest.approx(np.percentile(np.arange(1, 101), 50))
    assert 98 <= s["p99_ms"] <= 100


def test_latency_meter_window_keeps_only_the_latest_samples():
    m = LatencyMeter(window=10)
    for ms in range(1, 26):  # the ring wraps twice: samples 16..25 remain
        m.add_ns(0, ms * 1_000_000)
    s = m.summary()
    assert s["count"] == 25
    assert s["p50_ms"] == pytest.approx(np.percentile(np.arange(16, 26), 50))


def test_latency_meter_recent_counts_only_recent_arrivals():
    m = LatencyMeter()
    now = time.time_ns()
    m.add_ns(now - 2_000_000_000 - 500_000_000, now - 2_000_000_000)  # 500 ms, two seconds ago
    m.add_ns(now - 1_000_000, now)  # 1 ms, now
    assert m.summary(recent_s=1.0)["p99_ms"] == pytest.approx(1.0)
    assert m.summary()["p99_ms"] > 400
