"""Sources of experience: Gymnasium environments whose observations carry a camera frame.

>>> from envs import make
>>> env = make("Reacher-v5", frame_size=64, seed=0)
>>> obs, info = env.reset()
>>> sorted(obs), obs["frame"].shape
(['frame', 'state'], (64, 64, 3))

``make``, ``env_spec`` and the env classes load on first use (cv2, Gymnasium, MuJoCo: ~0.4 s):
the policy and learner actors import ``envs.options`` alone.
"""

import importlib
from typing import Any

from envs.headless import configure

configure()  # headless defaults and triton, before cv2 and mujoco load: a Ray worker making an env needs it

from envs.errors import EnvNotFoundError, EnvUnavailableError, RobotError  # noqa: E402
from envs.options import EnvOptions  # noqa: E402

_LAZY = {"CameraObservation": "envs.camera", "SUPPORTED_ENVS": "envs.registry", "env_spec": "envs.registry",
         "make": "envs.registry", "reports_success": "envs.registry", "RobotEnv": "envs.robot"}

__all__ = ["CameraObservation", "EnvNotFoundError", "EnvUnavailableError", "SUPPORTED_ENVS", "configure",
           "env_spec", "make", "reports_success", "EnvOptions", "RobotEnv", "RobotError"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'envs' has no attribute {name!r}")
