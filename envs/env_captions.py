"""Captions of environment renders, read from the simulator's state (the truth a captioner learns).

A captioned source is an env id (CartPole-v1, InvertedPendulum-v5, any ``Meta-World/TASK``), a
Meta-World task sequence (``mw-easy``, ``cw10``: each of its tasks), or a comma list of those that
share a grammar (``mw-easy,Meta-World/pick-place-v3``); `EnvCaptionBatch` plays one env per stream,
the sources' envs in turn. Meta-World's grammar (the arm and the task's object) is
`envs.metaworld_captions`'s; the rest of this module is the cart-pole one.

CartPole-v1 and its MuJoCo counterpart InvertedPendulum-v5 share one grammar:
``the pole leans left|leans right|stays upright and the cart moves left|moves right|stays still``.
Left and right are as the camera shows them: a positive pole angle tips the pole to the right of the
frame, a cart moving to positive x moves to the right, in both environments.

The pole's lean is read from the angle the frame shows. The cart's motion is read from how far the
cart moved over the last ``WINDOW`` frames, not from the velocity in the state: the state's velocity
already includes the latest push, which no frame shows yet, so a camera could not see it.
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from envs import metaworld
from envs.metaworld_captions import ARM_CAPTIONS, ArmStream
from envs.tasks import METAWORLD_SEQUENCES

POLE = ("leans left", "leans right", "stays upright")
CART = ("moves left", "moves right", "stays still")
POLE_CART_CAPTIONS: tuple[str, ...] = tuple(f"the pole {p} and the cart {c}" for p in POLE for c in CART)

UPRIGHT_RAD = 0.05  # |pole angle| below this reads as upright (about 3 degrees)
STILL_SPEED = 0.2  # cart speed (m/s, averaged over the window) below this reads as still
WINDOW = 4  # frames the cart's motion is measured over


def pole_cart_caption(pole_angle: float, cart_speed: float) -> str:
    """The caption of a cart-pole frame: its pole angle and the cart's recent signed speed."""
    pole = "stays upright" if abs(pole_angle) < UPRIGHT_RAD else ("leans right" if pole_angle > 0 else "leans left")
    cart = "stays still" if abs(cart_speed) < STILL_SPEED else ("moves right" if cart_speed > 0 else "moves left")
    return f"the pole {pole} and the cart {cart}"


# state vector → (cart position, pole angle)
_POSE: dict[str, Callable[[np.ndarray], tuple[float, float]]] = {
    "CartPole-v1": lambda s: (float(s[0]), float(s[2])),  # [x, x_dot, theta, theta_dot]
    "InvertedPendulum-v5": lambda s: (float(s[0]), float(s[1])),  # [x, theta, x_dot, theta_dot]
}
CAPTIONED_ENVS: dict[str, tuple[str, ...]] = {env_id: POLE_CART_CAPTIONS for env_id in _POSE}
CAPTIONED_KINDS = (*CAPTIONED_ENVS, "Meta-World/TASK", *METAWORLD_SEQUENCES)  # what an error lists


def env_ids(source: str) -> tuple[str, ...]:
    """The env ids of a captioned source: an env id, a Meta-World sequence (its tasks), or a comma list."""
    ids: list[str] = []
    for part in source.split(","):
        ids += [metaworld.PREFIX + t for t in METAWORLD_SEQUENCES[part]] if part in METAWORLD_SEQUENCES else [part]
    return tuple(dict.fromkeys(ids))


def env_grammar(source: str) -> tuple[str, ...]:
    """Every caption a source's captioner can give (:class:`EnvCaptioner`; `ArmCaptioner` for Meta-World)."""
    grammars = set()
    for env_id in env_ids(source):
        if metaworld.is_metaworld(env_id):
            metaworld.check_id(env_id)  # an unknown task fails here, naming the closest ones
            grammars.add(ARM_CAPTIONS)
        elif env_id in CAPTIONED_ENVS:
            grammars.add(CAPTIONED_ENVS[env_id])
        else:
            raise ValueError(f"no captions for {env_id!r}; captioned environments: {', '.join(CAPTIONED_KINDS)}")
    if len(grammars) > 1:
        raise ValueError(f"{source!r} mixes envs of different captions; train on one kind at a time")
    return grammars.pop()


def caption_family(source: str) -> str:
    """Which renders a captioner of ``source`` knows: ``Meta-World`` for Meta-World ids and sequences
    (one arm, table and camera in all), else the source itself."""
    return "Meta-World" if all(metaworld.is_metaworld(e) for e in env_ids(source)) else source


class EnvCaptioner:
    """Captions one env's frames in order: call it with each observation's state, ``reset`` at each
    episode start. ``dt`` is the simulated time between two frames (``env.unwrapped.dt``)."""

    def __init__(self, env_id: str, dt: float) -> None:
        if env_id not in CAPTIONED_ENVS:
            raise ValueError(f"no cart-pole captions for {env_id!r}; captioned environments: {', '.join(CAPTIONED_ENVS)}")
        self.pose, self.dt = _POSE[env_id], dt
        self.positions: collections.deque[float] = collections.deque(maxlen=WINDOW + 1)

    def reset(self) -> None:
        self.positions.clear()

    def __call__(self, state: np.ndarray) -> str:
        x, angle = self.pose(np.asarray(state))
        self.positions.append(x)
        frames = len(self.positions) - 1  # an episode's first frame has no motion yet: still
        speed = (x - self.positions[0]) / (frames * self.dt) if frames else 0.0
        return pole_cart_caption(angle, speed)


def frame_dt(env) -> float:
    """Simulated seconds between two frames of a Gymnasium env (MuJoCo's ``dt``, CartPole's ``tau``)."""
    inner = env.unwrapped
    return float(inner.dt if hasattr(inner, "dt") else inner.tau)


@dataclass(frozen=True)
class EnvFrameTruth:
    """The caption of one rendered frame; every env frame is scored (``is_last`` is always True)."""

    caption: str
    is_last: bool = True


class RandomActionStream:
    """One cart-pole env acting at random; ``next(n)`` → frames (n, S, S, 3) and the caption of each.
    Finished episodes reset and the stream goes on."""

    def __init__(self, env_id: str, seed: int, frame_size: int = 64) -> None:
        from envs.registry import make

        self.env = make(env_id, frame_size=frame_size, seed=seed)
        self.captioner = EnvCaptioner(env_id, frame_dt(self.env))
        self.obs = self.env.reset()[0]

    def next(self, n_frames: int) -> tuple[np.ndarray, list[str]]:
        frames, captions = [], []
        for _ in range(n_frames):
            frames.append(self.obs["frame"])
            captions.append(self.captioner(self.obs["state"]))
            self.obs, _, term, trunc, _ = self.env.step(self.env.action_space.sample())
            if term or trunc:
                self.obs = self.env.reset()[0]
                self.captioner.reset()
        return np.stack(frames), captions


class EnvCaptionBatch:
    """B captioned env streams, stream i playing the source's env i mod (number of envs): ``next(n)``
    → frames (B, n, S, S, 3) and, per stream, the caption of each frame. Cart-pole envs act at
    random; Meta-World envs play ``play`` episodes (`ArmStream`: ``mixed``, ``expert`` or ``random``)."""

    def __init__(self, source: str, seeds: Sequence[int], frame_size: int = 64, play: str = "mixed") -> None:
        env_grammar(source)
        self.source = source
        ids = env_ids(source)
        self.streams = [ArmStream(ids[i % len(ids)], int(s), frame_size, play) if metaworld.is_metaworld(ids[i % len(ids)])
                        else RandomActionStream(ids[i % len(ids)], int(s), frame_size) for i, s in enumerate(seeds)]

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[EnvFrameTruth]]]:
        frames, truths = [], []
        for stream in self.streams:
            stream_frames, captions = stream.next(n_frames)
            frames.append(stream_frames)
            truths.append([EnvFrameTruth(c) for c in captions])
        return np.stack(frames), truths
