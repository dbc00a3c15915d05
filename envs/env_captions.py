"""Captions of environment renders, read from the simulator's state (the truth a captioner learns).

CartPole-v1 and its MuJoCo counterpart InvertedPendulum-v5 share one grammar:
``the pole leans left|leans right|stays upright and the cart moves left|moves right|stays still``.
Left and right are as the camera shows them: a positive pole angle tips the pole to the right of the
frame, a positive cart velocity moves the cart to the right, in both environments.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

POLE = ("leans left", "leans right", "stays upright")
CART = ("moves left", "moves right", "stays still")
POLE_CART_CAPTIONS: tuple[str, ...] = tuple(f"the pole {p} and the cart {c}" for p in POLE for c in CART)

UPRIGHT_RAD = 0.05  # |pole angle| below this reads as upright (about 3 degrees)
STILL_SPEED = 0.1  # |cart velocity| below this (m/s) reads as still


def pole_cart_caption(pole_angle: float, cart_velocity: float) -> str:
    """The caption of a cart-pole state."""
    pole = "stays upright" if abs(pole_angle) < UPRIGHT_RAD else ("leans right" if pole_angle > 0 else "leans left")
    cart = "stays still" if abs(cart_velocity) < STILL_SPEED else ("moves right" if cart_velocity > 0 else "moves left")
    return f"the pole {pole} and the cart {cart}"


def _cartpole(state: np.ndarray) -> str:  # [x, x_dot, theta, theta_dot]
    return pole_cart_caption(float(state[2]), float(state[1]))


def _inverted_pendulum(state: np.ndarray) -> str:  # [cart x, pole angle, cart velocity, pole angular velocity]
    return pole_cart_caption(float(state[1]), float(state[2]))


CAPTIONED_ENVS: dict[str, tuple[Callable[[np.ndarray], str], tuple[str, ...]]] = {
    "CartPole-v1": (_cartpole, POLE_CART_CAPTIONS),
    "InvertedPendulum-v5": (_inverted_pendulum, POLE_CART_CAPTIONS),
}


def env_caption(env_id: str, state: np.ndarray) -> str:
    """The caption of ``env_id``'s observation state vector; a ValueError names the captioned envs."""
    if env_id not in CAPTIONED_ENVS:
        raise ValueError(f"no captions for {env_id!r}; captioned environments: {', '.join(CAPTIONED_ENVS)}")
    return CAPTIONED_ENVS[env_id][0](np.asarray(state))


def env_grammar(env_id: str) -> tuple[str, ...]:
    """Every caption ``env_caption`` can give for ``env_id``."""
    if env_id not in CAPTIONED_ENVS:
        raise ValueError(f"no captions for {env_id!r}; captioned environments: {', '.join(CAPTIONED_ENVS)}")
    return CAPTIONED_ENVS[env_id][1]


@dataclass(frozen=True)
class EnvFrameTruth:
    """The caption of one rendered frame; every env frame is scored (``is_last`` is always True)."""

    caption: str
    is_last: bool = True


class EnvCaptionBatch:
    """B copies of a captioned env acting at random: ``next(n)`` → frames (B, n, S, S, 3) and, per
    env, the caption of the state each frame shows. Finished episodes reset and the stream goes on."""

    def __init__(self, env_id: str, seeds: Sequence[int], frame_size: int = 64) -> None:
        from envs.registry import make

        env_grammar(env_id)  # unknown ids fail here, with the list of captioned envs
        self.env_id = env_id
        self.envs = [make(env_id, frame_size=frame_size, seed=int(s)) for s in seeds]
        self.obs = [env.reset()[0] for env in self.envs]

    def next(self, n_frames: int) -> tuple[np.ndarray, list[list[EnvFrameTruth]]]:
        frames, truths = [], []
        for i, env in enumerate(self.envs):
            env_frames, env_truths = [], []
            for _ in range(n_frames):
                obs = self.obs[i]
                env_frames.append(obs["frame"])
                env_truths.append(EnvFrameTruth(env_caption(self.env_id, obs["state"])))
                obs, _, term, trunc, _ = env.step(env.action_space.sample())
                self.obs[i] = env.reset()[0] if term or trunc else obs
            frames.append(np.stack(env_frames))
            truths.append(env_truths)
        return np.stack(frames), truths
