"""Captions of environment renders, read from the simulator's state (the truth a captioner learns).

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


def env_grammar(env_id: str) -> tuple[str, ...]:
    """Every caption an :class:`EnvCaptioner` can give for ``env_id``."""
    if env_id not in CAPTIONED_ENVS:
        raise ValueError(f"no captions for {env_id!r}; captioned environments: {', '.join(CAPTIONED_ENVS)}")
    return CAPTIONED_ENVS[env_id]


class EnvCaptioner:
    """Captions one env's frames in order: call it with each observation's state, ``reset`` at each
    episode start. ``dt`` is the simulated time between two frames (``env.unwrapped.dt``)."""

    def __init__(self, env_id: str, dt: float) -> None:
        env_grammar(env_id)  # unknown ids fail here, with the list of captioned envs
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


class EnvCaptionBatch:
    """B copies of a captioned env acting at random: ``next(n)`` → frames (B, n, S, S, 3) and, per
    env, the caption of each frame. Finished episodes reset and the stream goes on."""

    def __init__(self, env_id: str, seeds: Sequence[int], frame_size: int = 64) -> None:
        from envs.registry import make

        env_grammar(env_id)
        self.env_id = env_id
        self.envs = [make(env_id, frame_size=frame_size, seed=int(s)) for s in seeds]
        self.captioners = [EnvCaptioner(env_id, frame_dt(env)) for env in self.envs]
        self.obs = [env.reset()[0] for env in self.envs]

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[EnvFrameTruth]]]:
        frames, truths = [], []
        for i, (env, captioner) in enumerate(zip(self.envs, self.captioners)):
            env_frames, env_truths = [], []
            for _ in range(n_frames):
                obs = self.obs[i]
                env_frames.append(obs["frame"])
                env_truths.append(EnvFrameTruth(captioner(obs["state"])))
                obs, _, term, trunc, _ = env.step(env.action_space.sample())
                if term or trunc:
                    obs = env.reset()[0]
                    captioner.reset()
                self.obs[i] = obs
            frames.append(np.stack(env_frames))
            truths.append(env_truths)
        return np.stack(frames), truths
