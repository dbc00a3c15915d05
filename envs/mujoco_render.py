"""Fast, correct offscreen frames from Gymnasium's MuJoCo environments.

Three things gymnasium's MuJoCo renderer does not do for a camera that renders every step:
- it renders shadows, floor reflections and 4x multisampling, which at 64x64 cost 15-40x
  (HalfCheetah-v5 on llvmpipe/EGL: 12-30 steps/s with them, 450-550 without), and draws
  Hopper's floor as 320x320 squares;
- it only switches OpenGL contexts between the viewers of one env, so with several envs in one
  process an env renders with the context made last and returns another env's picture;
- loading some of its XML files makes MuJoCo 4 print a deprecation warning to stdout and append it
  to ./MUJOCO_LOG.TXT.

mujoco is an optional extra of gymnasium, so it is imported only when a MuJoCo env is in use.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import gymnasium
import numpy as np
from gymnasium.error import DependencyNotInstalled

# MuJoCo 4 deprecates `settotalmass`, which gymnasium's HalfCheetah and Ant XML files use; a user
# cannot act on it.
_NOISE = ("compiler attribute 'settotalmass' is deprecated",)

# At most this many squares per side for a floor plane (MuJoCo subdivides planes for lighting).
_PLANE_SQUARES = 40


def mujoco_env_type() -> type | None:
    """Gymnasium's `MujocoEnv` base class, or None when mujoco is not installed."""
    try:
        from gymnasium.envs.mujoco.mujoco_env import MujocoEnv
    except (ImportError, DependencyNotInstalled):
        return None
    return MujocoEnv


def is_mujoco(env_or_type: gymnasium.Env | type) -> bool:
    """Whether an (unwrapped) env, or an env class, is one of gymnasium's MuJoCo envs."""
    base = mujoco_env_type()
    if base is None:
        return False
    if isinstance(env_or_type, type):
        return issubclass(env_or_type, base)
    return isinstance(env_or_type, base)


@contextlib.contextmanager
def model_warnings_as_python_warnings() -> Iterator[None]:
    """Collect MuJoCo's warnings while a model loads, then re-issue them as Python warnings,
    dropping the known-harmless ones.

    MuJoCo's warning handler is process-wide; the previous one is restored on exit. Warnings are
    re-issued only after the handler is restored, never from inside MuJoCo's callback.
    """
    import mujoco

    messages: list[str] = []
    previous = mujoco.get_mju_user_warning()
    mujoco.set_mju_user_warning(messages.append)
    try:
        yield
    finally:
        mujoco.set_mju_user_warning(previous)
    for message in messages:
        if not any(noise in message for noise in _NOISE):
            warnings.warn(f"MuJoCo: {message}", RuntimeWarning, stacklevel=3)


def speed_up_rendering(env: gymnasium.Env) -> None:
    """Turn off shadows, reflections and multisampling of an unwrapped MuJoCo env's frames, and
    coarsen finely subdivided floors.

    These model fields change only how the scene is drawn, never the physics (a test checks this).
    Multisampling and the shadow-map size are read when the render context is created, so call this
    before the first render; dropping the 4096x4096 shadow map also saves ~64 MB per env. A plane is
    drawn as a grid of squares of side `geom_size[2]`; Hopper's floor is 320x320 squares, which
    costs ~3 ms a frame and looks the same as 40x40.
    """
    import mujoco

    model = env.model
    model.light_castshadow[:] = 0
    model.mat_reflectance[:] = 0
    model.vis.quality.offsamples = 0
    model.vis.quality.shadowsize = 0
    planes = model.geom_type == mujoco.mjtGeom.mjGEOM_PLANE
    sizes = model.geom_size[planes]
    # half-sizes of 0 mean an infinite plane: its spacing is left alone
    coarsest = 2 * np.max(sizes[:, :2], axis=1) / _PLANE_SQUARES
    model.geom_size[planes, 2] = np.maximum(sizes[:, 2], coarsest)


def make_context_current(env: gymnasium.Env) -> None:
    """Make an unwrapped MuJoCo env's OpenGL context current before it renders.

    Needed whenever more than one MuJoCo env renders in one process; costs ~6 us. Before the first
    render there is no context yet, and creating it makes it current.
    """
    viewer = env.mujoco_renderer.viewer
    if viewer is not None:
        viewer.make_context_current()
