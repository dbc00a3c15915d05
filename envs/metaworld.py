"""Meta-World v3: a Sawyer arm's manipulation tasks (pick-place, reach, push, …) as `envs.make` ids.

    >>> env = make_metaworld("Meta-World/reach-v3", frame_size=64, seed=0)
    >>> obs, info = env.reset()
    >>> obs["state"].shape, obs["frame"].shape
    ((39,), (64, 64, 3))

An id is ``Meta-World/TASK`` for any of Meta-World's 50 v3 task names (`task_names()`). What this adds to
Meta-World's own env:

- **Frames upright.** MuJoCo's corner cameras render upside down; `Upright` turns them round (both
  axes, as LeRobot's wrapper does), so the table is below the arm in every stored frame.
- **Fast frames.** Multisampling and shadows off (`envs.mujoco_render`): 4 → 25–41 steps/s at 64×64
  in software GL.
- **Episodes end on success** (``terminated`` at the first step whose ``info["success"]`` is 1), as
  Meta-World's evaluation counts an episode a success if it succeeded at any step; ``full_episodes``
  keeps every episode at its full 500 steps (truncated) instead.
- **Seeds.** ``seed`` picks Meta-World's 50 object and goal placements of the task and the first
  reset's one, and seeds the action space; later resets draw from that seed's stream, and
  ``reset(seed=s)`` makes the episode a function of (the env's seed, s), so one env can play many
  seeded episodes (making an env takes ~1–2 s; a reset, milliseconds).

`expert(task)` is Meta-World's scripted policy for a task: state → action.
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.registration import EnvSpec

from envs.errors import EnvNotFoundError, EnvUnavailableError, one_line

PREFIX = "Meta-World/"
DEFAULT_CAMERA = "corner2"  # sees the arm, the table and the object from the front corner
CAMERAS: tuple[str, ...] = ("corner2", "corner", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
UPSIDE_DOWN: frozenset[str] = frozenset({"corner", "corner2", "corner3"})  # looked at: these render turned round
MAX_EPISODE_STEPS = 500  # Meta-World's max_path_length: stepping past it raises


def is_metaworld(env_id: str) -> bool:
    """Whether ``env_id`` names a Meta-World task (``Meta-World/TASK``)."""
    return env_id.startswith(PREFIX)


def task_names() -> tuple[str, ...]:
    """Meta-World's v3 task names, sorted ('assembly-v3', …); empty when metaworld is not installed."""
    try:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS
    except ImportError:
        return ()
    return tuple(sorted(ALL_V3_ENVIRONMENTS))


def check_id(env_id: str) -> str:
    """The task name of a Meta-World id; EnvNotFoundError (one line, the closest names) otherwise."""
    task = env_id[len(PREFIX):]
    names = task_names()
    if not names:
        raise EnvUnavailableError(f"cannot make {env_id}: metaworld is not installed (pip install metaworld==3.0.0)")
    if task in names:
        return task
    close = difflib.get_close_matches(task, names, n=3, cutoff=0.5)
    hint = (f"did you mean {', '.join(PREFIX + c for c in close)}?" if close
            else f"Meta-World's tasks are {', '.join(names[:4])}, … (`thalamus envs` lists them)")
    raise EnvNotFoundError(f"unknown Meta-World task {task!r}; {hint}")


def env_spec(env_id: str) -> EnvSpec:
    """Gymnasium's spec of the env every Meta-World task is made from, once ``env_id`` is checked."""
    check_id(env_id)
    import metaworld  # noqa: F401  (registers Meta-World/MT1 with gymnasium)

    return gymnasium.registry["Meta-World/MT1"]


class Upright(gymnasium.Wrapper):
    """Turns the frames of a camera that renders upside down the right way up."""

    def render(self) -> Any:
        picture = self.env.render()
        return None if picture is None else np.ascontiguousarray(np.flip(picture, (0, 1)))


class Episodes(gymnasium.Wrapper):
    """Seeded resets and a bool ``info["success"]`` on every step and reset.

    Meta-World's env ignores a reset's seed (its task wrapper draws the object and goal positions
    from the env's generator); here ``reset(seed=s)`` reseeds that generator first, so the episode
    is decided by s. (Meta-World's ``success`` is a float, absent at reset.)
    """

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.env.unwrapped.seed(seed)  # Meta-World's reset ignores its seed argument
        obs, info = self.env.reset(options=options)
        return obs, {**info, "success": False}

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, float(reward), terminated, truncated, {**info, "success": bool(info.get("success", 0.0))}


def make_raw(env_id: str, frame_size: int, seed: int | None, camera: str = DEFAULT_CAMERA,
             full_episodes: bool = False) -> gymnasium.Env:
    """Meta-World's env for ``env_id`` rendering ``camera`` upright at ``frame_size``, without the
    camera wrapper (`envs.make` adds it)."""
    task = check_id(env_id)
    if camera not in CAMERAS:
        close = difflib.get_close_matches(camera, CAMERAS, n=1)
        raise ValueError(f"--camera {camera!r} is not a Meta-World camera; "
                         + (f"did you mean {close[0]}? " if close else "") + f"choose from {', '.join(CAMERAS)}")
    import metaworld  # noqa: F401  (registers Meta-World/MT1 with gymnasium)

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Meta-World's spaces trip gymnasium's checker; it is off below
            env = gymnasium.make("Meta-World/MT1", env_name=task, seed=seed, render_mode="rgb_array",
                                 camera_name=camera, width=frame_size, height=frame_size,
                                 terminate_on_success=not full_episodes, max_episode_steps=MAX_EPISODE_STEPS,
                                 disable_env_checker=True)
    except Exception as error:  # a broken install or GL library: one line, not Meta-World's traceback
        raise EnvUnavailableError(f"cannot make {env_id}: {one_line(error)}") from error
    env = Episodes(env)
    return Upright(env) if camera in UPSIDE_DOWN else env


def expert(task: str) -> Callable[[np.ndarray], np.ndarray]:
    """Meta-World's scripted expert for ``task`` (a task name or a ``Meta-World/`` id): the
    39-float state → a 4-float action in [-1, 1]."""
    name = check_id(task if is_metaworld(task) else PREFIX + task)
    from metaworld.policies import ENV_POLICY_MAP

    policy = ENV_POLICY_MAP[name]()

    def act(state: np.ndarray) -> np.ndarray:
        with warnings.catch_warnings():  # its gains exceed 1 by design; the clip below is the env's own
            warnings.simplefilter("ignore", UserWarning)
            action = policy.get_action(np.asarray(state, dtype=np.float64))
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    return act
