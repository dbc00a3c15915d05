"""Sources of experience: Gymnasium environments whose observations carry a camera frame.

>>> from envs import make
>>> env = make("Reacher-v5", frame_size=64, seed=0)
>>> obs, info = env.reset()
>>> sorted(obs), obs["frame"].shape
(['frame', 'state'], (64, 64, 3))
"""

from envs.headless import configure

configure()  # headless defaults and triton, before cv2 and mujoco load: a Ray worker making an env needs it

from envs.camera import CameraObservation  # noqa: E402
from envs.errors import EnvNotFoundError, EnvUnavailableError, RobotError  # noqa: E402
from envs.options import EnvOptions  # noqa: E402
from envs.registry import SUPPORTED_ENVS, env_spec, make, reports_success  # noqa: E402
from envs.robot import RobotEnv  # noqa: E402

__all__ = ["CameraObservation", "EnvNotFoundError", "EnvUnavailableError", "SUPPORTED_ENVS", "configure",
           "env_spec", "make", "reports_success", "EnvOptions", "RobotEnv", "RobotError"]
