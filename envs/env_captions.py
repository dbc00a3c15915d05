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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np

from envs import metaworld
from envs.metaworld_captions import ARM_CAPTIONS, PLAYS, ArmStream
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


# where each env's state vector keeps (cart position, cart velocity, pole angle, pole angular velocity)
_STATE_ORDER: dict[str, tuple[int, int, int, int]] = {
    "CartPole-v1": (0, 1, 2, 3),  # [x, x_dot, theta, theta_dot]
    "InvertedPendulum-v5": (0, 2, 1, 3),  # [x, theta, x_dot, theta_dot]
}
# how far from the centre a steered cart is sent: short of the ends (CartPole-v1 ends at |x| 2.4,
# InvertedPendulum-v5's rail at 1.0), so that the captioner sees carts across the whole track
TRACK_REACH: dict[str, float] = {"CartPole-v1": 2.3, "InvertedPendulum-v5": 0.8}
CAPTIONED_ENVS: dict[str, tuple[str, ...]] = {env_id: POLE_CART_CAPTIONS for env_id in _STATE_ORDER}
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


def pole_cart_state(state: np.ndarray, order: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """(cart position, cart velocity, pole angle, pole angular velocity) of a cart-pole state vector."""
    return tuple(float(state[i]) for i in order)


class EnvCaptioner:
    """Captions one env's frames in order: call it with each observation's state, ``reset`` at each
    episode start. ``dt`` is the simulated time between two frames (``env.unwrapped.dt``)."""

    def __init__(self, env_id: str, dt: float) -> None:
        if env_id not in CAPTIONED_ENVS:
            raise ValueError(f"no cart-pole captions for {env_id!r}; captioned environments: {', '.join(CAPTIONED_ENVS)}")
        self.order, self.dt = _STATE_ORDER[env_id], dt
        self.positions: collections.deque[float] = collections.deque(maxlen=WINDOW + 1)

    def reset(self) -> None:
        self.positions.clear()

    def __call__(self, state: np.ndarray) -> str:
        x, _, angle, _ = pole_cart_state(np.asarray(state), self.order)
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


@dataclass(frozen=True)
class Steering:
    """A balancing controller that steers the cart to a target (``play="expert"`` for cart-pole envs):
    the force is linear in (x - target, x_dot, angle, angle_dot), as a cart-pole LQR gain is; the target
    is drawn across the track (`TRACK_REACH`) and redrawn every ``hold`` frames, and ``explore`` of the
    actions are random, so the pole sometimes falls there too. A learned policy often balances the pole
    near one end of the track, which random actions (over in ~20 frames, near the centre) never show."""

    gains: tuple[float, float, float, float] = (1.0, 1.5, 20.0, 3.0)
    hold: tuple[int, int] = (100, 300)
    explore: float = 0.1
    mixed_share: float = 0.05  # of ``mixed`` play's episodes: a steered one lasts ~20x a random one,
    # so this gives the two about half the frames each

    def force(self, state: tuple[float, float, float, float], target: float) -> float:
        x, x_dot, angle, angle_dot = state
        return float(np.dot(self.gains, (x - target, x_dot, angle, angle_dot)))


class PoleCartStream:
    """One cart-pole env played episode after episode; ``next(n)`` → frames (n, S, S, 3) and the
    caption of each. ``play``: ``random`` actions, ``expert`` (`Steering`: balanced and steered across
    the track), or ``mixed`` (each episode one of the two, at `Steering.mixed_share`)."""

    def __init__(self, env_id: str, seed: int, frame_size: int = 64, play: str = "mixed",
                 steering: Steering = Steering()) -> None:
        from envs.registry import make

        if play not in PLAYS:
            raise ValueError(f"play {play!r}: choose one of {', '.join(PLAYS)}")
        self.env = make(env_id, frame_size=frame_size, seed=seed)
        self.order, self.reach, self.play, self.steering = _STATE_ORDER[env_id], TRACK_REACH[env_id], play, steering
        self.rng = np.random.default_rng(seed)
        self.captioner = EnvCaptioner(env_id, frame_dt(self.env))
        self._new_episode(self.env.reset()[0])

    def _new_episode(self, obs: dict) -> None:
        self.obs, self.hold_left, self.target = obs, 0, 0.0  # a steered episode draws its first target at once
        self.steered = self.play == "expert" or (self.play == "mixed" and self.rng.random() < self.steering.mixed_share)
        self.captioner.reset()

    def _action(self) -> Any:
        if not self.steered or self.rng.random() < self.steering.explore:
            return self.env.action_space.sample()
        if self.hold_left <= 0:
            self.target = self.rng.uniform(-self.reach, self.reach)
            self.hold_left = int(self.rng.integers(*self.steering.hold))
        self.hold_left -= 1
        force = self.steering.force(pole_cart_state(self.obs["state"], self.order), self.target)
        space = self.env.action_space
        if isinstance(space, gymnasium.spaces.Discrete):  # CartPole: push left (0) or right (1)
            return int(force > 0)
        return np.clip(np.full(space.shape, force), space.low, space.high).astype(space.dtype)

    def next(self, n_frames: int) -> tuple[np.ndarray, list[str]]:
        frames, captions = [], []
        for _ in range(n_frames):
            frames.append(self.obs["frame"])
            captions.append(self.captioner(self.obs["state"]))
            self.obs, _, term, trunc, _ = self.env.step(self._action())
            if term or trunc:
                self._new_episode(self.env.reset()[0])
        return np.stack(frames), captions


class EnvCaptionBatch:
    """B captioned env streams, stream i playing the source's env i mod (number of envs): ``next(n)``
    → frames (B, n, S, S, 3) and, per stream, the caption of each frame. The envs play
    ``play`` episodes: ``mixed``, ``expert`` or ``random`` (`PoleCartStream`, `ArmStream`)."""

    def __init__(self, source: str, seeds: Sequence[int], frame_size: int = 64, play: str = "mixed") -> None:
        env_grammar(source)
        self.source = source
        ids = env_ids(source)
        self.streams = [ArmStream(ids[i % len(ids)], int(s), frame_size, play) if metaworld.is_metaworld(ids[i % len(ids)])
                        else PoleCartStream(ids[i % len(ids)], int(s), frame_size, play) for i, s in enumerate(seeds)]

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[EnvFrameTruth]]]:
        frames, truths = [], []
        for stream in self.streams:
            stream_frames, captions = stream.next(n_frames)
            frames.append(stream_frames)
            truths.append([EnvFrameTruth(c) for c in captions])
        return np.stack(frames), truths
