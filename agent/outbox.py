"""The sending end of a channel to another actor: a bounded window of unacknowledged messages.

Over Ray, each message is one actor call (the portable transport); the window bounds how many are
in flight. When it is full, ``BLOCK`` waits for the oldest to land (backpressure, with a timeout
that reports a stalled peer) and ``DROP_NEWEST`` drops the new message and counts it, so a slow
consumer off the hot path never stalls acting. Given a plain object instead of an actor handle, the
call is made in-process, so the same actor code runs without Ray. Messages in flight to a receiver
whose process dies are lost and counted; Ray restarts a restartable receiver, and the messages sent
after that reach it.
"""

from __future__ import annotations

from typing import Any

import ray

from agent.channels import ChannelStats, ChannelTimeout, Overflow


class Outbox:
    """Sends payloads to ``target.method`` with at most ``window`` unacknowledged calls."""

    def __init__(self, name: str, target: Any, method: str, window: int = 8,
                 overflow: Overflow = Overflow.BLOCK, timeout_s: float = 60.0) -> None:
        self.name, self.window, self.overflow, self.timeout_s = name, window, Overflow(overflow), timeout_s
        self._remote = isinstance(target, ray.actor.ActorHandle)
        self._call = getattr(target, method)
        self._pending: list[ray.ObjectRef] = []
        self._sent = self._dropped = self._lost = 0

    def send(self, payload: Any) -> None:
        """Deliver ``payload`` (in-process: now; over Ray: within the window policy)."""
        if not self._remote:
            self._call(payload)
            self._sent += 1
            return
        self._reap(timeout=0)
        if len(self._pending) >= self.window:
            if self.overflow is not Overflow.BLOCK:
                self._dropped += 1
                return
            self._reap(timeout=self.timeout_s, at_least=len(self._pending) - self.window + 1)
        self._pending.append(self._call.remote(payload))
        self._sent += 1

    def _reap(self, timeout: float, at_least: int = 0) -> None:
        """Collect finished calls (raising their errors); wait for ``at_least`` of them."""
        if not self._pending:
            return
        ready, self._pending = ray.wait(
            self._pending, num_returns=max(at_least, 1) if at_least else len(self._pending),
            timeout=timeout, fetch_local=False,
        )
        if len(ready) < at_least:
            raise ChannelTimeout(f"{self.name}: no reply for {timeout:.0f} s, the receiver has stalled")
        for ref in ready:
            try:
                ray.get(ref)  # surfaces a receiver's exception here, at the sender
            except ray.exceptions.RayActorError:
                self._lost += 1

    def drain(self) -> None:
        """Wait until every message sent so far has been handled."""
        if self._remote:
            self._reap(timeout=self.timeout_s, at_least=len(self._pending))

    def stats(self) -> ChannelStats:
        return ChannelStats(self.name, self.overflow.value, self.window,
                            self._sent, self._sent - len(self._pending) - self._lost, self._dropped, self._lost)
