"""Typed, versioned messages that cross process boundaries, serialized with msgpack.

Every message is a dataclass. On the wire it is a msgpack map ``{"kind", "v", <fields>}``; numpy
arrays travel as msgpack ext type 1 carrying ``(dtype, shape, bytes)``. Decoding validates the kind,
the schema version and every field's type, and raises :class:`MessageError` naming the bad field,
so a malformed message never crashes an actor silently.
"""

from __future__ import annotations

import dataclasses
import functools
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar, get_type_hints

import msgpack
import numpy as np

SCHEMA_VERSION = 3  # 2: Action lost its caption; captions travel as their own message; 3: a call's steps in one
_NDARRAY_EXT = 1


class MessageError(ValueError):
    """A message could not be decoded: wrong kind, newer schema, or a malformed field."""


def now_ns() -> int:
    """Wall-clock nanoseconds, comparable across processes (and, roughly, across hosts)."""
    return time.time_ns()


@dataclass
class Message:
    """Base of all messages: ``sent_ns`` is stamped by the sender to measure per-hop latency."""

    KIND: ClassVar[str] = "message"
    sent_ns: int = 0


@dataclass
class Observation(Message):
    """A batch of environment steps, one row per env: what the agent sees after acting.

    ``reward``/``terminated``/``truncated`` belong to the action that led here; on the first step
    after a reset they are 0/False. Envs cut off by a time limit (truncated, not terminated) were
    reset, so the state they reached is passed along as ``final_*`` rows (``final_index`` says
    which env each row is): a learner bootstraps from it instead of treating the cut as an end.
    """

    KIND: ClassVar[str] = "observation"
    step: int = 0
    state: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [N, S]
    frame: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))  # [N,H,W,3]
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [N]
    terminated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [N]
    truncated: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [N]
    final_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [K]
    final_state: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [K, S]
    final_frame: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))


@dataclass
class Percept(Message):
    """Perception's encoding of an :class:`Observation`, with the reward signal passed along."""

    KIND: ClassVar[str] = "percept"
    step: int = 0
    vector: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [N, D]
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [N]
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [N]
    final_index: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [K]
    final_vector: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [K, D]


@dataclass
class Action(Message):
    """The policy's actions for a batch of envs: int64 [N] (discrete) or float32 [N, A]."""

    KIND: ClassVar[str] = "action"
    step: int = 0
    action: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class CaptionFrames(Message):
    """One observation batch's camera frames, from perception to the captioner: row ``i`` is env
    ``i``'s frame at batch step ``step``, already at the captioner's frame size."""

    KIND: ClassVar[str] = "caption_frames"
    step: int = 0
    frames: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0, 3), np.uint8))  # [N, S, S, 3]


@dataclass
class Captions(Message):
    """The captioner's captions of consecutive observation batches, for the recorder, one message per
    captioning call: ``tokens[j, i]`` is env ``i``'s caption of its frame at batch step ``steps[j]``
    (the store joins them to its rows by (env, step)); ``lags[j]``: how many later batches had reached
    the captioner when these were ready; ``skipped[j]``: the captioner skipped that step's frames to
    keep up, and these are the captions of the next frames it read."""

    KIND: ClassVar[str] = "captions"
    steps: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [J]
    tokens: np.ndarray = field(default_factory=lambda: np.zeros((0, 0, 0), np.int16))  # [J, N, L] token ids
    lags: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # [J]
    skipped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [J]


@dataclass
class Transitions(Message):
    """A batch of consecutive percept transitions for the learner (off the hot path)."""

    KIND: ClassVar[str] = "transitions"
    percept: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [M, D]
    action: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))  # [M, A]
    reward: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # [M]
    next_percept: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    done: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))  # [M]


@dataclass
class Episode(Message):
    """One finished episode (every step, frames included) for the recorder; ``data["step"]`` is
    each row's batch step, the key its caption is joined by."""

    KIND: ClassVar[str] = "episode"
    env_index: int = 0
    task: int = 0
    data: dict[str, np.ndarray] = field(default_factory=dict)


MESSAGE_TYPES: dict[str, type[Message]] = {
    cls.KIND: cls for cls in (Observation, Percept, Action, CaptionFrames, Captions, Transitions, Episode)
}
M = TypeVar("M", bound=Message)


def _pack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        arr = np.ascontiguousarray(obj)
        header = msgpack.packb((arr.dtype.str, list(arr.shape)))
        return msgpack.ExtType(_NDARRAY_EXT, header + arr.tobytes())
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def _ext_hook(code: int, payload: bytes) -> Any:
    if code != _NDARRAY_EXT:
        raise MessageError(f"unknown msgpack ext type {code}")
    unpacker = msgpack.Unpacker()
    unpacker.feed(payload)
    dtype, shape = unpacker.unpack()
    offset = unpacker.tell()
    try:
        return np.frombuffer(payload, dtype=np.dtype(dtype), offset=offset).reshape(shape)
    except (TypeError, ValueError) as exc:
        raise MessageError(f"malformed array payload: {exc}") from None


def encode(msg: Message) -> bytes:
    """Serialize a message to msgpack bytes (stamping ``sent_ns`` if it is unset)."""
    if msg.sent_ns == 0:
        msg.sent_ns = now_ns()
    body = {"kind": msg.KIND, "v": SCHEMA_VERSION}
    body.update({f.name: getattr(msg, f.name) for f in dataclasses.fields(msg)})
    return msgpack.packb(body, default=_pack_default, use_bin_type=True)


@functools.cache
def _field_types(cls: type[Message]) -> tuple[tuple[str, Any], ...]:
    """(name, type) of each field of ``cls``, resolved once (``get_type_hints`` is slow)."""
    hints = get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _check(kind: str, name: str, expected: Any, value: Any) -> Any:
    where = f"{kind}.{name}"
    if expected is np.ndarray:
        if not isinstance(value, np.ndarray):
            raise MessageError(f"{where}: expected an array, got {type(value).__name__}")
        return value
    if expected is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise MessageError(f"{where}: expected an int, got {type(value).__name__}")
        return value
    if expected is bool:
        if not isinstance(value, bool):
            raise MessageError(f"{where}: expected a bool, got {type(value).__name__}")
        return value
    if expected == dict[str, np.ndarray]:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in value.items()
        ):
            raise MessageError(f"{where}: expected a map of name to array")
        return value
    raise MessageError(f"{where}: unsupported field type {expected!r}")


def decode(data: bytes, expected: type[M] | None = None) -> M:
    """Deserialize and validate a message; ``expected`` pins the message class.

    Raises :class:`MessageError` naming the kind and field at fault.
    """
    try:
        body = msgpack.unpackb(data, ext_hook=_ext_hook, raw=False, strict_map_key=False)
    except MessageError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types on garbage input
        raise MessageError(f"not a thalamus message: {exc}") from None
    if not isinstance(body, dict):
        raise MessageError(f"not a thalamus message: expected a map, got {type(body).__name__}")
    kind = body.pop("kind", None)
    version = body.pop("v", None)
    cls = MESSAGE_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise MessageError(f"unknown message kind {kind!r}")
    if expected is not None and cls is not expected:
        raise MessageError(f"expected a {expected.KIND} message, got {kind}")
    if not isinstance(version, int) or version < 1:
        raise MessageError(f"{kind}.v: missing or invalid schema version {version!r}")
    if version > SCHEMA_VERSION:
        raise MessageError(
            f"{kind} message has schema version {version}, this thalamus reads up to "
            f"{SCHEMA_VERSION}: upgrade thalamus on every node"
        )
    kwargs = {}
    for name, expected_type in _field_types(cls):
        if name not in body:
            raise MessageError(f"{kind}.{name}: missing field")
        kwargs[name] = _check(kind, name, expected_type, body.pop(name))
    if body:
        raise MessageError(f"{kind}: unexpected field(s) {', '.join(sorted(map(str, body)))}")
    return cls(**kwargs)  # type: ignore[return-value]
