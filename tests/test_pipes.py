"""The hot path's pipes: frames arrive whole and in order, errors and dead or stalled stages are reported."""

import multiprocessing as mp
import os
import signal
import time

import pytest

from agent.channels import ChannelTimeout
from agent.pipes import PeerClosed, PipeRing, StageFailed, serve, serve_method


class Stage:
    def __init__(self, tag: bytes) -> None:
        self.tag = tag

    def add(self, msg: bytes) -> bytes:
        if msg == b"boom":
            raise ValueError("no boom here")
        return msg + self.tag

    def slow(self, msg: bytes) -> bytes:
        time.sleep(5)
        return msg


def _local(actor, method, inp, out):
    serve_method(actor, method, inp, out, 5.0)


def test_frames_pass_every_stage_whole_and_in_order():
    ring = PipeRing.around([(Stage(b"a"), "add"), (Stage(b"b"), "add")], _local, 5.0)
    try:
        for size in (0, 1, 7, 65_537, 3 * 2**20 + 5):  # empty, tiny, and larger than a pipe's buffer
            msg = os.urandom(size)
            assert ring.execute(msg) == msg + b"ab"
        assert [ring.execute(bytes([i])) for i in range(50)] == [bytes([i]) + b"ab" for i in range(50)]
    finally:
        ring.teardown()
    assert not ring.dir.exists()


def test_a_raising_stage_is_reported_and_the_ring_keeps_serving():
    ring = PipeRing.around([(Stage(b"a"), "add"), (Stage(b"b"), "add")], _local, 5.0)
    try:
        with pytest.raises(StageFailed, match="ValueError: no boom here"):
            ring.execute(b"boom")
        assert ring.execute(b"x") == b"xab"
    finally:
        ring.teardown()


def test_a_stalled_stage_times_out():
    ring = PipeRing.around([(Stage(b"a"), "slow")], _local, 0.5)
    try:
        with pytest.raises(ChannelTimeout):
            ring.execute(b"x")
    finally:
        ring.teardown()


def _stage_process(inp: str, out: str) -> None:
    serve(Stage(b"p").add, inp, out, 10.0).join()


def test_a_killed_stage_process_shows_as_peer_closed_not_a_timeout():
    procs = []

    def start(_actor, _method, inp, out):
        proc = mp.get_context("fork").Process(target=_stage_process, args=(inp, out), daemon=True)
        proc.start()
        procs.append(proc)

    ring = PipeRing.around([(None, "add"), (Stage(b"b"), "add")], lambda a, m, i, o: start(a, m, i, o) if a is None
                    else _local(a, m, i, o), 30.0)
    try:
        assert ring.execute(b"x") == b"xpb"
        os.kill(procs[0].pid, signal.SIGKILL)
        started = time.monotonic()
        with pytest.raises(PeerClosed):
            ring.execute(b"y")
        assert time.monotonic() - started < 5  # noticed at once, long before the 30 s timeout
    finally:
        ring.teardown()


def test_a_full_pipe_to_a_stalled_stage_times_out_the_sender():
    ring = PipeRing.around([(Stage(b"a"), "slow")], _local, 0.5)
    try:
        with pytest.raises(ChannelTimeout):  # the stage sleeps in its first call; 4 MB cannot all fit the pipe
            ring.execute(b"x")
        with pytest.raises(ChannelTimeout, match="took no message"):
            ring.execute(os.urandom(4 * 2**20))
    finally:
        ring.teardown()
