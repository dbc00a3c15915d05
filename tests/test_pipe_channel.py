"""The pipe channel beside the ring: messages arrive whole, in order and counted; a handler's error
and a dead receiver are reported to the sender's side."""

import multiprocessing as mp
import os
import signal
import threading
import time

import pytest

from agent.perception.caption_thread import CaptionThread
from agent.pipe_channel import PipeInbox, PipeOutbox
from agent.pipes import PeerClosed


def test_messages_arrive_whole_in_order_and_counted():
    got: list[bytes] = []
    inbox = PipeInbox("test", got.append)
    out = PipeOutbox("test", inbox.path, lambda n: inbox.wait_for(n, 5.0))
    try:
        sent = [os.urandom(n) for n in (0, 1, 98_304, 3 * 2**20 + 5, 17)]  # one step's frames, and past the buffer
        for msg in sent:
            out.send(msg)
        out.drain()
        assert got == sent
        assert out.stats().put == out.stats().got == len(sent)
    finally:
        out.close()
        inbox.close()


def test_a_handler_error_is_raised_where_the_sender_waits():
    def handle(msg: bytes) -> None:
        if msg == b"boom":
            raise ValueError("no boom here")

    inbox = PipeInbox("test", handle)
    out = PipeOutbox("test", inbox.path, lambda n: inbox.wait_for(n, 5.0))
    try:
        out.send(b"ok")
        out.send(b"boom")
        with pytest.raises(RuntimeError, match="ValueError: no boom here"):
            out.drain()
    finally:
        out.close()
        inbox.close()


def _receiver(conn) -> None:
    inbox = PipeInbox("test", lambda msg: None)
    conn.send(inbox.path)
    threading.Event().wait()


def test_a_dead_receiver_shows_as_peer_closed_and_the_message_is_counted_lost():
    parent, child = mp.get_context("fork").Pipe()
    proc = mp.get_context("fork").Process(target=_receiver, args=(child,), daemon=True)
    proc.start()
    out = PipeOutbox("test", parent.recv(), lambda n: None, timeout_s=30.0)
    try:
        out.send(b"x" * 1000)
        os.kill(proc.pid, signal.SIGKILL)
        proc.join()
        started = time.monotonic()
        with pytest.raises(PeerClosed):
            for _ in range(1000):  # the first write after the death may still fit the pipe's buffer
                out.send(b"y" * 1000)
        assert time.monotonic() - started < 5  # noticed at once, not after the timeout
        assert out.stats().lost == 1
    finally:
        out.close()


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_an_idle_caption_thread_runs_at_the_lowest_priority_and_still_captions():
    got = []
    thread = CaptionThread(lambda frames, gaps: frames[:, :, None], lambda step, tokens, lag, skipped: got.append(step),
                           idle=True)
    try:
        assert thread.idle
        assert os.sched_getscheduler(thread._thread.native_id) == os.SCHED_IDLE
        for step in range(5):
            thread.submit(step, [step])
        thread.drain()
        assert got == list(range(5))
    finally:
        thread.close()
