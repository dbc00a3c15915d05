"""Captions of environment renders, read from the simulator's state (the truth a captioner learns).

CartPole-v1 and its MuJoCo counterpart InvertedPendulum-v5 share one grammar:
``the pole leans left|leans right|stays upright and the cart moves left|moves right|stays still``.
Left and right are as the camera shows them: a positive pole angle tips the pole to the right of the
frame, a positive cart velocity moves the cart to the right, in both environments.
"""

from __future__ import annotations

from collections.abc import Callable

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
