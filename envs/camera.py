"""The camera wrapper: every observation carries the env's state and an RGB frame of it."""

from __future__ import annotations

import os
from typing import Any

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces

from envs.classic_frames import painter_for
from envs.errors import EnvUnavailableError, one_line
from envs.mujoco_render import is_mujoco, make_context_current, speed_up_rendering


class CameraObservation(gymnasium.ObservationWrapper, gymnasium.utils.RecordConstructorArgs):
    """Adds a headless RGB camera frame of the current simulator state to every observation.

    ## Observation Space

    | key       | space                           | what                                           |
    |-----------|---------------------------------|------------------------------------------------|
    | `"state"` | `Box(float32, (S,))`            | the env's own observation, flattened, float32  |
    | `"frame"` | `Box(0, 255, (F, F, 3), uint8)` | RGB picture of the state the observation is of |

    `F` is `frame_size`. Actions, rewards, termination and truncation are the wrapped env's. With
    ``frames=False`` nothing is rendered and every frame is black: a policy that reads only the state
    (the diffusion policy) plays a Meta-World env ~30x faster in software GL.

    ## Where frames come from (fastest that applies)

    - CartPole, Acrobot, Pendulum, MountainCar(Continuous): drawn with OpenCV straight from the
      state (`envs.classic_frames`), the same scene as gymnasium's pygame picture shrunk to F x F,
      12-20x faster; `render_mode` is not needed.
    - gymnasium MuJoCo envs: MuJoCo's offscreen renderer with shadows, reflections and
      multisampling off (`envs.mujoco_render`); make the env at `width=height=F` so that no resize
      is needed. Several of them can render in one process.
    - any other env made with `render_mode="rgb_array"`: `env.render()` shrunk with `cv2.INTER_AREA`
      (a non-square picture is squeezed, not cropped).

    ## Errors

    If the first frame cannot be rendered (a missing extra such as pygame, or no OpenGL for MuJoCo),
    `EnvUnavailableError` says so in one line.

    Example:
        >>> import gymnasium
        >>> env = CameraObservation(gymnasium.make("CartPole-v1"), frame_size=48)
        >>> obs, info = env.reset(seed=0)
        >>> obs["state"].shape, obs["frame"].shape, obs["frame"].dtype
        ((4,), (48, 48, 3), dtype('uint8'))
    """

    def __init__(self, env: gymnasium.Env, frame_size: int = 64, frames: bool = True) -> None:
        if frame_size < 1:
            raise ValueError(f"frame_size must be a positive number of pixels, got {frame_size}")
        gymnasium.utils.RecordConstructorArgs.__init__(self, frame_size=frame_size, frames=frames)
        gymnasium.ObservationWrapper.__init__(self, env)
        self.frame_size = frame_size
        self.frames = frames
        self._paint = painter_for(env.unwrapped)
        self._mujoco = self._paint is None and is_mujoco(env.unwrapped)
        if self._paint is None and env.render_mode != "rgb_array":
            raise ValueError(
                f"{self._name()} needs render_mode='rgb_array' for its camera, "
                f"got {env.render_mode!r}"
            )
        if self._mujoco:
            speed_up_rendering(env.unwrapped)
        self._rendered = False

        flat = spaces.flatten_space(env.observation_space)
        with np.errstate(over="ignore"):  # float64 bounds beyond float32's range become +-inf
            low, high = flat.low.astype(np.float32), flat.high.astype(np.float32)
        self.observation_space = spaces.Dict(
            {
                "state": spaces.Box(low, high, dtype=np.float32),
                "frame": spaces.Box(0, 255, (frame_size, frame_size, 3), dtype=np.uint8),
            }
        )

    def observation(self, observation: Any) -> dict[str, np.ndarray]:
        """The wrapped env's observation as float32 plus a frame of the env's current state."""
        state = spaces.flatten(self.env.observation_space, observation).astype(np.float32)
        return {"state": state, "frame": self._frame()}

    def _frame(self) -> np.ndarray:
        """A frame of the current state; a first render that fails raises EnvUnavailableError."""
        if not self.frames:
            return np.zeros((self.frame_size, self.frame_size, 3), np.uint8)
        if self._paint is not None:
            return self._paint(self.env.unwrapped, self.frame_size)
        try:
            if self._mujoco:
                make_context_current(self.env.unwrapped)
            picture = self.env.render()
        except Exception as error:
            if self._rendered:
                raise
            raise EnvUnavailableError(self._render_failure(error)) from error
        self._rendered = True
        return self._fit(picture)

    def _fit(self, picture: Any) -> np.ndarray:
        """A rendered picture as contiguous uint8 (F, F, 3)."""
        picture = np.asarray(picture)
        if picture.ndim != 3 or picture.shape[2] < 3:
            raise EnvUnavailableError(
                f"{self._name()}.render() gave an array of shape {picture.shape}, "
                "expected (H, W, 3)"
            )
        size = self.frame_size
        if picture.shape[:2] != (size, size):
            picture = cv2.resize(picture[..., :3], (size, size), interpolation=cv2.INTER_AREA)
        return np.ascontiguousarray(picture[..., :3], dtype=np.uint8)

    def _render_failure(self, error: Exception) -> str:
        """One line saying why the first render failed, with the MuJoCo GL hint where it helps."""
        message = f"cannot render {self._name()}: {one_line(error)}"
        if self._mujoco:
            gl = os.environ.get("MUJOCO_GL", "unset")
            message += f" (MUJOCO_GL={gl}; without a display set MUJOCO_GL=egl, or osmesa)"
        return message

    def _name(self) -> str:
        """The env's id for messages."""
        spec = self.env.spec
        return spec.id if spec is not None else type(self.env.unwrapped).__name__
