"""Sources of experience: Gymnasium environments whose observations carry a camera frame.

>>> from envs import make
>>> env = make("Reacher-v5", frame_size=64, seed=0)
>>> obs, info = env.reset()
>>> sorted(obs), obs["frame"].shape
(['frame', 'state'], (64, 64, 3))
"""

from envs.camera import CameraObservation
from envs.errors import EnvNotFoundError, EnvUnavailableError
from envs.registry import SUPPORTED_ENVS, make

__all__ = ["CameraObservation", "EnvNotFoundError", "EnvUnavailableError", "SUPPORTED_ENVS", "make"]
