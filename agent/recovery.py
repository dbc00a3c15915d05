"""Restarts, recovery and checkpoints: what keeps a run going when an actor's process dies.

Ray restarts a perception, policy, learner or recorder actor whose process dies (up to
``MAX_RESTARTS`` times each). The supervisor notices a restart by the actor's process id, puts the
newest checkpoint's state back into it (a restarted actor starts from scratch), and the driver
starts the ring again from the env's latest observation. The env actor is not restarted: it holds
the run's open episodes, and its death ends the run with the ``--resume`` hint.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import ray

from agent.channels import ChannelTimeout
from agent.checkpoints import CHECKPOINTS, save_tensors
from agent.transport import last_error_line

MAX_RESTARTS = 3  # per restartable actor
RESTARTABLE = ("perception", "policy", "learner")  # hold models: restored from the newest checkpoint

_DIED = (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError)


class ActorFailed(RuntimeError):
    """An actor raised or died for good; the message names the actor and its error in one line.
    ``restarting``: Ray was restarting it (the call may succeed again)."""

    def __init__(self, message: str, restarting: bool = False) -> None:
        super().__init__(message)
        self.restarting = restarting


def call(actor: Any, method: str, *args: Any) -> Any:
    """``actor.method(*args)``: a Ray call (an ObjectRef) or, in-process, the result."""
    return getattr(actor, method).remote(*args) if isinstance(actor, ray.actor.ActorHandle) else getattr(actor, method)(*args)


def get(value: Any, who: str, timeout_s: float) -> Any:
    """The value of a :func:`call`; a stalled actor is a ChannelTimeout, a failed one ActorFailed."""
    if not isinstance(value, ray.ObjectRef):
        return value
    try:
        return ray.get(value, timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise ChannelTimeout(f"the {who} actor did not answer for {timeout_s:.0f} s") from None
    except ray.exceptions.RayTaskError as exc:
        cause = exc.cause if getattr(exc, "cause", None) is not None else exc
        raise ActorFailed(f"the {who} actor failed: {type(cause).__name__}: {cause}") from None
    except _DIED as exc:
        restarting = isinstance(exc, ray.exceptions.ActorUnavailableError)
        raise ActorFailed(f"the {who} actor died: {last_error_line(exc)}", restarting) from None


def call_when_up(actor: Any, method: str, who: str, timeout_s: float, *args: Any) -> Any:
    """:func:`get` of ``actor.method(*args)``, called again while Ray restarts the actor (an actor
    off the hot path, such as the recorder, may still be coming back when the run ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return get(call(actor, method, *args), who, timeout_s)
        except ActorFailed as exc:
            if not exc.restarting or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


class Supervisor:
    """Watches the restartable actors' processes and keeps the newest checkpoint to restore them."""

    def __init__(self, actors: dict[str, Any], env: Any, run_dir: Path | None, timeout_s: float) -> None:
        self.actors, self.env, self.run_dir, self.timeout_s = actors, env, run_dir, timeout_s
        self.remote = isinstance(env, ray.actor.ActorHandle)
        self.state: dict[str, Any] | None = None  # the newest checkpoint, put back into a restarted actor
        self.restarts = 0
        self.recoveries = 0
        self.pids = self._pids()

    def _pids(self) -> dict[str, int]:
        if not self.remote:
            return {}
        refs = {name: a.__ray_call__.remote(lambda _: os.getpid()) for name, a in self.actors.items() if a is not None}
        return {name: ray.get(ref, timeout=self.timeout_s) for name, ref in refs.items()}

    def count_restarts(self) -> list[str]:
        """Actors whose process changed since last looked at (Ray restarted them); counts them."""
        now = self._pids()
        restarted = [name for name, pid in now.items() if self.pids.get(name) != pid]
        self.pids = now
        self.restarts += len(restarted)
        return restarted

    def restore(self, state: dict[str, Any], names: tuple[str, ...] | list[str]) -> None:
        """Put ``state``'s parts back into the named actors (a resumed run, or restarted actors)."""
        self.state = state
        for name in names:
            if name in RESTARTABLE:
                get(call(self.actors[name], "load_state_dict", state[name]), name, self.timeout_s)

    def recover(self, error: str) -> None:
        """A ring peer died: wait until Ray has restarted every actor, give the restarted ones the
        newest checkpoint's state. ActorFailed after ``MAX_RESTARTS`` recoveries or a timeout."""
        self.recoveries += 1
        if self.recoveries > MAX_RESTARTS:
            raise ActorFailed(f"actors on the hot path died {self.recoveries} times; the last: {error}")
        deadline = time.monotonic() + self.timeout_s
        while True:  # another actor may die, or still be restarting, while this one comes back
            try:
                restarted = self.count_restarts()
                if self.state is not None:
                    self.restore(self.state, [n for n in restarted if n in RESTARTABLE])
                return
            except (*_DIED, ActorFailed) as again:
                if time.monotonic() > deadline:
                    raise ActorFailed(f"the actors did not come back within {self.timeout_s:.0f} s: {again}") from None
                time.sleep(0.2)

    def checkpoint(self, name: str, **meta: Any) -> None:
        """One moment of every model, saved to ``checkpoints/NAME``: the ring is held between two
        steps while perception, policy and learner give their state, then the file is committed."""
        if self.run_dir is None:
            return
        held = get(call(self.env, "pause"), "env", self.timeout_s)
        try:
            refs = {n: call(self.actors[n], "state_dict") for n in RESTARTABLE}
            state = {n: get(ref, n, self.timeout_s) for n, ref in refs.items()}
        finally:
            if held:
                get(call(self.env, "go_on"), "env", self.timeout_s)
        self.state = state
        save_tensors(self.run_dir / CHECKPOINTS / name, {**state, **meta})
