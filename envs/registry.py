"""`make`: a Gymnasium env by id, with a camera frame in every observation.

Ids are gymnasium's; SUPPORTED_ENVS are the ones this project tests, but any registered id whose
env renders with `render_mode="rgb_array"` works.
"""

from __future__ import annotations

import contextlib
import difflib
from typing import Any

import gymnasium
from gymnasium.envs.registration import EnvSpec, load_env_creator
from gymnasium.error import DependencyNotInstalled

from envs import metaworld, robot
from envs.camera import CameraObservation
from envs.options import EnvOptions
from envs.errors import EnvNotFoundError, EnvUnavailableError, one_line
from envs.mujoco_render import is_mujoco, model_warnings_as_python_warnings

SUPPORTED_ENVS: tuple[str, ...] = (
    "CartPole-v1",
    "Acrobot-v1",
    "Pendulum-v1",
    "MountainCar-v0",
    "MountainCarContinuous-v0",
    "Reacher-v5",
    "InvertedPendulum-v5",
    "InvertedDoublePendulum-v5",
    "HalfCheetah-v5",
    "Hopper-v5",
    "Walker2d-v5",
)


def make(env_id: str, frame_size: int = 64, seed: int | None = None,
         options: EnvOptions = EnvOptions()) -> gymnasium.Env:
    """Make the gymnasium env `env_id` whose observations are `{"state", "frame"}` dicts.

    See `CameraObservation` for the observation space. Actions, rewards and the time limit are the
    env's own. A ``robot:MODULE:CLASS`` id is a robot with LeRobot's interface (`envs.robot.RobotEnv`:
    the same observations, at ``options.control_hz``). `options` are those of Meta-World and robot
    envs (`EnvOptions`); another env refuses them. With `seed`, the first reset uses it unless that
    reset passes its own seed, and the action space is seeded, so a run is reproducible.

    Raises:
        EnvNotFoundError: `env_id` is not registered; the message names the closest ids.
        EnvUnavailableError: the env needs an extra that is not installed.
        ValueError: `frame_size` is not positive, or an option does not apply to this env.

    Example:
        >>> env = make("CartPole-v1", frame_size=64, seed=0)
        >>> obs, info = env.reset()
        >>> obs["frame"].shape
        (64, 64, 3)
    """
    if frame_size < 1:
        raise ValueError(f"frame_size must be a positive number of pixels, got {frame_size}")
    if robot.is_robot(env_id):
        return robot.make_robot(env_id, frame_size, seed, options)
    if options.robot_config is not None:
        raise ValueError(f"--robot-config is for robot:MODULE:CLASS envs; {env_id} is not a robot")
    if metaworld.is_metaworld(env_id):
        env = metaworld.make_raw(env_id, frame_size, seed, options.camera or metaworld.DEFAULT_CAMERA,
                                 options.full_episodes)
        if seed is not None:
            env.action_space.seed(seed)
        return CameraObservation(env, frame_size, options.frames)
    if options.camera is not None or options.full_episodes:
        raise ValueError(f"--camera and --full-episodes are for Meta-World envs; {env_id} has one picture "
                         "and ends its episodes itself")
    spec = env_spec(env_id)
    try:
        uses_mujoco = is_mujoco(_env_type(spec))
        # MuJoCo renders at the frame size directly; other envs keep their own picture size
        kwargs: dict[str, Any] = {"width": frame_size, "height": frame_size} if uses_mujoco else {}
        loading = model_warnings_as_python_warnings() if uses_mujoco else contextlib.nullcontext()
        with loading:
            env = gymnasium.make(spec, render_mode="rgb_array", **kwargs)
    except (DependencyNotInstalled, ImportError) as error:
        raise EnvUnavailableError(f"cannot make {env_id}: {one_line(error)}") from error
    if seed is not None:
        env = SeedFirstReset(env, seed)
    return CameraObservation(env, frame_size, options.frames)


class SeedFirstReset(gymnasium.Wrapper, gymnasium.utils.RecordConstructorArgs):
    """Seeds the first reset (unless it brings its own seed) and the action space with `seed`.

    Later resets are left unseeded so that episodes differ, as gymnasium intends.
    """

    def __init__(self, env: gymnasium.Env, seed: int) -> None:
        gymnasium.utils.RecordConstructorArgs.__init__(self, seed=seed)
        gymnasium.Wrapper.__init__(self, env)
        self._pending_seed: int | None = seed
        env.action_space.seed(seed)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        if seed is None:
            seed = self._pending_seed
        self._pending_seed = None
        return super().reset(seed=seed, options=options)


def reports_success(env_id: str) -> bool:
    """Whether the env says in ``info["success"]`` when a step achieved its task (Meta-World's do)."""
    return metaworld.is_metaworld(env_id)


def env_spec(env_id: str) -> EnvSpec:
    """The registered spec of `env_id`, or EnvNotFoundError: one line naming the closest registered
    ids (letter case ignored), or else the supported ones, and where the full list is.

    Call it to check an id before starting work that would make the env later (a thread, an actor).
    """
    if robot.is_robot(env_id):
        return robot.env_spec(env_id)
    if metaworld.is_metaworld(env_id):
        return metaworld.env_spec(env_id)
    spec = gymnasium.registry.get(env_id)
    if spec is not None:
        return spec
    by_lower = {name.lower(): name for name in gymnasium.registry}
    close = [by_lower[m] for m in difflib.get_close_matches(env_id.lower(), list(by_lower), n=3, cutoff=0.6)]
    hint = (f"did you mean {', '.join(close)}?" if close
            else f"no registered id is close; supported: {', '.join(SUPPORTED_ENVS)}")
    raise EnvNotFoundError(f"unknown environment {env_id!r}; {hint} (`thalamus envs` lists the supported ids)")


def _env_type(spec: EnvSpec) -> Any:
    """What the spec's entry point makes: an env class, a factory function, or None."""
    if spec.entry_point is None or callable(spec.entry_point):
        return spec.entry_point
    return load_env_creator(spec.entry_point)
