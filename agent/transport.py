"""The hot ring's transport: how the EnvActor's observation reaches perception, then the policy, and
how the action comes back.

    EnvActor ─obs─▶ perception.encode ─percept─▶ policy.act ─action─▶ EnvActor

One interface, :class:`Transport` (``round_trip(obs) -> action``), with two implementations:
named pipes between the actors' loop threads on one node (:class:`PipeTransport`, agent/pipes.py),
and plain actor calls with the ObjectRef handed on across nodes (:class:`ActorCallTransport`).
In one process (tests, the pipeline benchmark's baseline) the calls are direct (:class:`DirectTransport`).

Two halves, because the two ends hold different things: the driver, which holds perception's and the
policy's handles, makes a :class:`Link` (:func:`link` picks the kind and, for pipes, starts the
stages); the EnvActor opens its :class:`Transport` from the link (:func:`open_transport`). So the
EnvActor never unpickles a handle to them on one node, which would load their classes and with them
torch (seconds of CPU in a process that has no other use for it).

Every implementation reports a dead peer as :class:`PeerDied`, a raising method as
:class:`StageError` and a stalled one as ``ChannelTimeout``, so the ring loop handles one set.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import ray

from agent.channels import ChannelTimeout
from agent.pipes import PeerClosed, PipeRing, StageFailed, lay_pipes, on_ray_actors

KINDS = ("auto", "pipes", "actor")


class PeerDied(ConnectionError):
    """A perception or policy process died (Ray restarts it; the driver recovers the ring)."""


class StageError(RuntimeError):
    """Perception or policy raised; the message is its ``Type: message`` line."""


def last_error_line(exc: BaseException) -> str:
    """The ``SomeError: message`` line at the bottom of a remote traceback, else the class name."""
    lines = [ln.strip() for ln in str(exc).splitlines() if "Error" in ln.split(":")[0] and ":" in ln]
    return lines[-1] if lines else type(exc).__name__


class Transport(Protocol):
    """Carries one observation batch through perception and policy and returns the action batch."""

    name: str

    def round_trip(self, obs: bytes) -> bytes: ...

    def close(self) -> None: ...


class DirectTransport:
    """In one process: the two methods called in turn."""

    name = "inprocess"

    def __init__(self, perception: Any, policy: Any) -> None:
        self.perception, self.policy = perception, policy

    def round_trip(self, obs: bytes) -> bytes:
        try:
            return self.policy.act(self.perception.encode(obs))
        except Exception as exc:
            raise StageError(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        pass


class PipeTransport:
    """Named pipes on one node: perception and policy each serve their method on a loop thread."""

    name = "pipes"

    def __init__(self, folder: str, timeout_s: float) -> None:
        self.ring = PipeRing(folder, 2, timeout_s)

    def round_trip(self, obs: bytes) -> bytes:
        try:
            return self.ring.execute(obs)
        except PeerClosed as exc:
            raise PeerDied(str(exc)) from None
        except StageFailed as exc:
            raise StageError(str(exc)) from None

    def close(self) -> None:
        self.ring.teardown()


class ActorCallTransport:
    """Plain Ray actor calls (any node): perception's ObjectRef goes straight to the policy."""

    name = "actor"

    def __init__(self, perception: Any, policy: Any, timeout_s: float) -> None:
        self.perception, self.policy, self.timeout_s = perception, policy, timeout_s

    def round_trip(self, obs: bytes) -> bytes:
        try:
            return ray.get(self.policy.act.remote(self.perception.encode.remote(obs)), timeout=self.timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise ChannelTimeout(f"no action for {self.timeout_s:.0f} s: perception or the policy has stalled") from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise StageError(f"{type(cause).__name__}: {cause}") from None
        except ray.exceptions.RayActorError as exc:
            raise PeerDied(last_error_line(exc)) from None

    def close(self) -> None:
        pass


def one_node() -> bool:
    """Whether the Ray cluster has a single live node (pipes reach only actors on this node)."""
    return len([n for n in ray.nodes() if n["Alive"]]) <= 1


@dataclass(frozen=True)
class Link:
    """What the ring's head needs to reach perception and the policy: the folder of a pipe ring whose
    stages already serve (``pipes``), or the stages themselves (handles for ``actor`` calls, objects
    ``inprocess``); a hop silent for ``timeout_s`` is a stall."""

    kind: str
    timeout_s: float
    folder: str | None = None
    stages: tuple[Any, Any] | None = None


def uses_pipes(kind: str) -> bool:
    """Whether transport ``kind`` lays named pipes here (``auto``: on a one-node cluster)."""
    return kind == "pipes" or (kind == "auto" and one_node())


def link(kind: str, perception: Any, policy: Any, timeout_s: float) -> Link:
    """The link ``kind`` names (``auto``: pipes on a one-node cluster, else actor calls), made where
    the handles are; given plain objects instead of Ray actor handles, direct calls. PeerDied if a
    stage's process is gone (Ray restarts it)."""
    if kind not in KINDS:
        raise ValueError(f"transport must be one of {', '.join(KINDS)}, got {kind!r}")
    if not isinstance(perception, ray.actor.ActorHandle):
        return Link("inprocess", timeout_s, stages=(perception, policy))
    if uses_pipes(kind):
        try:
            folder = lay_pipes([(perception, "encode"), (policy, "act")], on_ray_actors(timeout_s))
            return Link("pipes", timeout_s, folder=folder)
        except ray.exceptions.RayActorError as exc:
            raise PeerDied(last_error_line(exc)) from None
    return Link("actor", timeout_s, stages=(perception, policy))


def open_transport(link: Link) -> Transport:
    """The head's end of ``link``."""
    if link.kind == "pipes":
        assert link.folder is not None
        return PipeTransport(link.folder, link.timeout_s)
    assert link.stages is not None
    if link.kind == "actor":
        return ActorCallTransport(*link.stages, link.timeout_s)
    return DirectTransport(*link.stages)
