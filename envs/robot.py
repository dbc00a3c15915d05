"""The robot bridge: any robot with LeRobot's `Robot` interface as a Gymnasium env, driven at a fixed
control rate.

    thalamus run --env robot:envs.sim_arm:SimArm --robot-config '{"action_low": [-2, -2, -2], "action_high": [2, 2, 2]}'

    >>> env = make_robot("robot:envs.sim_arm:SimArm", frame_size=64, seed=0, options=EnvOptions())
    >>> obs, info = env.reset()  # connects
    >>> obs["state"].shape, obs["frame"].shape
    ((3,), (64, 64, 3))
    >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())
    >>> sorted(info)
    ['late', 'sent_action']
    >>> env.close()  # disconnects

An id is ``robot:MODULE:CLASS``: CLASS is imported from MODULE and must have LeRobot's interface
(`INTERFACE`, matched, not imported: lerobot is not a dependency). It is built with the config's
``"robot"`` object as keyword arguments; a class with a ``config_class`` (LeRobot's own robots, e.g.
``robot:lerobot.robots.so_follower:SOFollower``) is given ``config_class(**robot)`` instead.

## The config (``--robot-config``: JSON text, or a path to a .json file)

| key                 | default          | what                                                         |
|---------------------|------------------|--------------------------------------------------------------|
| `robot`             | `{}`             | the robot class's keyword arguments (its config's fields)    |
| `action_low/high`   | -1 / 1 each      | the action range, one number per action feature, in order    |
| `episode_s`         | 10               | episode length in seconds: truncated after round(s * Hz) steps |
| `reward`            | none (reward 0)  | ``"module:function"`` of (observation dict, sent action dict) |
| `timeout_s`         | 2                | the longest a robot call may take before the robot counts as gone |
| `connect_timeout_s` | 30               | the same for `connect` (it may open ports, home motors)      |

## Spaces

| key / space | space                            | what                                                      |
|-------------|----------------------------------|-----------------------------------------------------------|
| `"state"`   | `Box(float32, (S,))`             | the float features of `observation_features`, in order    |
| `"frame"`   | `Box(0, 255, (F, F, 3), uint8)`  | the first camera (`EnvOptions.camera` picks another)      |
| action      | `Box(low, high, (A,), float32)`  | `action_features` in order; clipped to it before sending  |

A camera is a feature whose type is an ``(H, W, 3)`` shape; its picture is resized to F x F with
`cv2.INTER_AREA` (squeezed, not cropped), as `envs.camera.CameraObservation` does.

Actions are sent, then the step waits for the next tick of the control clock (``control_hz``,
`time.perf_counter`, absolute ticks so that no drift accumulates) and reads the observation then:
obs → policy → action → wait → obs, as LeRobot's record loop. ``info["sent_action"]`` is what
`send_action` returned (the robot may clip), as float32 in action order: that is what a run should
record. A step that reaches its tick late (the robot, or the policy, took longer than the period)
has ``info["late"]`` True and counts in `RobotEnv.late_steps`; the clock then restarts from that
moment rather than rushing to catch up. Episodes never terminate; they are truncated after
``episode_s``. A reset only re-reads the robot (a real arm has no reset) and restarts the clock.

## Lifetime and failures

The robot is built by `make_robot` but connected at the first `reset`, so it is connected in the
process (the Ray actor) that steps it. Every robot call runs on the env's own robot thread with a
timeout: a call that times out or raises becomes a one-line `RobotError` naming the robot and what
to check, and later steps fail at once. `close()` disconnects (with a timeout, even after such an
error); it never raises and never hangs, a failed disconnect is a warning; calling it again, or on
an env that never connected, does nothing. The env is a context manager too.
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
import json
import queue
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import EnvSpec

from envs.errors import EnvNotFoundError, RobotError, one_line
from envs.options import EnvOptions

T = TypeVar("T")

PREFIX = "robot:"
METHODS: tuple[str, ...] = ("connect", "get_observation", "send_action", "disconnect")
PROPERTIES: tuple[str, ...] = ("observation_features", "action_features", "is_connected")
INTERFACE: tuple[str, ...] = (*PROPERTIES, *METHODS)  # what a robot class must have (LeRobot's `Robot`)


def is_robot(env_id: str) -> bool:
    """Whether ``env_id`` names a robot (``robot:MODULE:CLASS``)."""
    return env_id.startswith(PREFIX)


# -- the config ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RobotConfig:
    """What ``--robot-config`` holds (see the module docstring's table)."""

    robot: dict[str, Any] = field(default_factory=dict)  # the robot class's keyword arguments
    action_low: tuple[float, ...] | None = None  # one per action feature, in order; None: -1 each
    action_high: tuple[float, ...] | None = None  # one per action feature, in order; None: 1 each
    episode_s: float = 10.0  # seconds an episode lasts (robots have no terminal states)
    reward: str | None = None  # "module:function" of (observation dict, sent action dict) -> float
    timeout_s: float = 2.0  # a get_observation, send_action or disconnect slower than this: the robot is gone
    connect_timeout_s: float = 30.0  # the same for connect

    @classmethod
    def parse(cls, text: str | None) -> RobotConfig:
        """The config in ``text``: JSON (an object), or the path of a .json file; None: the defaults.

        Raises ValueError in one line: text that is neither valid JSON nor a file, an unknown key, a
        value of the wrong type or range.
        """
        if text is None:
            return cls()
        source = "--robot-config"
        if not text.lstrip().startswith("{"):
            path = Path(text).expanduser()
            if not path.is_file():
                raise ValueError(f"--robot-config {text!r} is neither a JSON object nor a file "
                                 "(give JSON text like '{\"robot\": {...}}' or the path of a .json file)")
            source, text = f"--robot-config file {path}", path.read_text()
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{source} is not valid JSON: {error}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{source} must be a JSON object, got {type(raw).__name__}")
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in raw if k not in known]
        if unknown:
            close = difflib.get_close_matches(unknown[0], known, n=1)
            raise ValueError(f"{source} has unknown key {unknown[0]!r}"
                             + (f" (did you mean {close[0]!r}?)" if close else "") + f"; keys are {', '.join(known)}")
        if not isinstance(raw.get("robot", {}), dict):
            raise ValueError(f"{source}: \"robot\" must be an object of the robot class's arguments")
        for key in ("action_low", "action_high"):
            value = raw.get(key)
            if value is not None and not (isinstance(value, list) and all(_is_number(v) for v in value)):
                raise ValueError(f"{source}: {key!r} must be a list of numbers, got {value!r}")
            if value is not None:
                raw[key] = tuple(float(v) for v in value)
        for key in ("episode_s", "timeout_s", "connect_timeout_s"):
            if key in raw and not (_is_number(raw[key]) and raw[key] > 0):
                raise ValueError(f"{source}: {key!r} must be a positive number of seconds, got {raw[key]!r}")
        if raw.get("reward") is not None and not isinstance(raw["reward"], str):
            raise ValueError(f"{source}: \"reward\" must be \"module:function\", got {raw['reward']!r}")
        return cls(**raw)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- ids and classes ------------------------------------------------------------------------------
def _split_id(env_id: str) -> tuple[str, str]:
    """(MODULE, CLASS) of ``robot:MODULE:CLASS``; EnvNotFoundError for any other form."""
    parts = env_id[len(PREFIX):].split(":") if is_robot(env_id) else []
    if len(parts) != 2 or not all(p and all(s.isidentifier() for s in p.split(".")) for p in parts):
        raise EnvNotFoundError(f"robot id {env_id!r} is not of the form robot:MODULE:CLASS "
                               "(e.g. robot:envs.sim_arm:SimArm, robot:lerobot.robots.so_follower:SOFollower)")
    return parts[0], parts[1]


def _import(module_name: str, name: str, what: str) -> Any:
    """``module_name.name``; EnvNotFoundError saying which of the two is missing, and why."""
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # not found, or the module itself fails: either way, say why
        raise EnvNotFoundError(f"cannot import module {module_name!r} of {what}: {type(error).__name__}: "
                               f"{one_line(error)}") from None
    if not hasattr(module, name):
        public = [n for n in dir(module) if not n.startswith("_")]
        close = difflib.get_close_matches(name, public, n=3)
        raise EnvNotFoundError(f"module {module_name!r} has no {name!r} ({what})"
                               + (f"; did you mean {', '.join(close)}?" if close else ""))
    return getattr(module, name)


def robot_class(env_id: str) -> type:
    """The class ``robot:MODULE:CLASS`` names, checked to have LeRobot's robot interface.

    Raises:
        EnvNotFoundError: the id's form is wrong, or the module or class cannot be imported (says why).
        ValueError: the class lacks some of `INTERFACE` (names them).
    """
    module_name, name = _split_id(env_id)
    cls = _import(module_name, name, env_id)
    if not isinstance(cls, type):
        raise ValueError(f"{module_name}.{name} is a {type(cls).__name__}, not a class ({env_id})")
    missing = [n for n in METHODS if not callable(getattr(cls, n, None))]
    missing += [n for n in PROPERTIES if not hasattr(cls, n)]
    if missing:
        raise ValueError(f"{module_name}.{name} lacks {', '.join(missing)} of LeRobot's robot interface "
                         f"({', '.join(INTERFACE)}), so it cannot be driven as {env_id}")
    return cls


def env_spec(env_id: str) -> EnvSpec:
    """A spec for a robot id, once the id, its class and the class's interface are checked (see
    `robot_class`); nothing is built or connected. ``gymnasium.make(spec)`` makes the env with the
    default config."""
    robot_class(env_id)
    return EnvSpec(id=env_id, entry_point=make_robot, kwargs={"env_id": env_id}, nondeterministic=True,
                   disable_env_checker=True)


def _load_reward(spec: str) -> Callable[[dict[str, Any], dict[str, Any]], float]:
    """The function a config's ``"reward": "module:function"`` names."""
    module_name, _, name = spec.partition(":")
    if not module_name or not name:
        raise ValueError(f"--robot-config: \"reward\" must be \"module:function\", got {spec!r}")
    function = _import(module_name, name, "the config's reward")
    if not callable(function):
        raise ValueError(f"--robot-config: reward {spec!r} is not a function")
    return function


def _build(cls: type, kwargs: dict[str, Any], env_id: str) -> Any:
    """The robot object: ``cls(**kwargs)``, or ``cls(cls.config_class(**kwargs))`` for LeRobot's
    classes. One line either way: ValueError when the config's ``"robot"`` does not fit (TypeError or
    ValueError), RobotError when the constructor fails otherwise."""
    config_class = getattr(cls, "config_class", None)
    try:
        return cls(config_class(**kwargs)) if isinstance(config_class, type) else cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot build {env_id} from the config's \"robot\" {json.dumps(kwargs)}: "
                         f"{one_line(error)}") from None
    except Exception as error:
        raise RobotError(f"cannot build {env_id}: {type(error).__name__}: {one_line(error)}") from None


def make_robot(env_id: str, frame_size: int = 64, seed: int | None = None,
               options: EnvOptions = EnvOptions()) -> RobotEnv:
    """The `RobotEnv` of ``robot:MODULE:CLASS`` with ``options.robot_config`` at ``options.control_hz``.

    The robot is built (its class's constructor runs) but not connected: the first reset connects.

    Raises:
        EnvNotFoundError: the id's form, its module or its class is wrong.
        ValueError: the class lacks part of the interface, the config is bad, or does not fit the robot.
    """
    if options.full_episodes:
        raise ValueError(f"--full-episodes is for Meta-World envs; {env_id}'s episodes last episode_s "
                         "of its --robot-config")
    cls = robot_class(env_id)
    config = RobotConfig.parse(options.robot_config)
    reward = _load_reward(config.reward) if config.reward is not None else None
    env = RobotEnv(_build(cls, config.robot, env_id), config, frame_size, options.control_hz, env_id,
                   camera=options.camera, reward=reward)
    if seed is not None:
        env.action_space.seed(seed)
    return env


# -- the env --------------------------------------------------------------------------------------
class RobotEnv(gymnasium.Env):
    """A robot with LeRobot's interface as a Gymnasium env at a fixed control rate (module docstring).

    Attributes the run reads: ``late_steps`` (steps that missed their tick, since the env was made),
    ``control_hz``, ``episode_steps`` (the steps an episode is truncated at), ``name`` (the id).
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, robot: Any, config: RobotConfig, frame_size: int = 64, control_hz: float = 30.0,
                 name: str | None = None, camera: str | None = None,
                 reward: Callable[[dict[str, Any], dict[str, Any]], float] | None = None) -> None:
        if frame_size < 1:
            raise ValueError(f"frame_size must be a positive number of pixels, got {frame_size}")
        if not control_hz > 0:
            raise ValueError(f"--control-hz must be a positive number of steps a second, got {control_hz}")
        self.robot, self.config, self.frame_size, self.control_hz = robot, config, frame_size, float(control_hz)
        self.name = name or type(robot).__name__
        self.reward_fn = reward
        self.period = 1.0 / self.control_hz
        self.episode_steps = max(1, round(config.episode_s * self.control_hz))
        self.state_keys, cameras, self.action_keys = _features(robot, self.name)
        if camera is not None and camera not in cameras:
            raise ValueError(f"--camera {camera!r} is not a camera of {self.name}; "
                             f"its cameras are {', '.join(cameras)}")
        self.camera = camera or cameras[0]
        self.observation_space = spaces.Dict({
            "state": spaces.Box(-np.inf, np.inf, (len(self.state_keys),), np.float32),
            "frame": spaces.Box(0, 255, (frame_size, frame_size, 3), np.uint8)})
        self.action_space = spaces.Box(*_action_limits(config, self.action_keys, self.name), dtype=np.float32)
        self.late_steps = 0
        self._calls = _RobotThread(f"robot {self.name}")
        self._connect_started = False  # connect was called: close must try to disconnect
        self._connected = False
        self._failure: str | None = None  # the RobotError that broke the env; later steps repeat it
        self._next_tick = 0.0  # perf_counter time of the next observation
        self._t = 0  # steps into the episode

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """Connect (the first time), read the robot and restart the control clock."""
        super().reset(seed=seed)
        self._check_usable()
        if not self._connected:
            self._connect()
        raw = self._call("get_observation", self.robot.get_observation)
        # the clock starts after this read: a slow first read (a camera warming up) is no late step
        self._next_tick = time.perf_counter() + self.period
        self._t = 0
        return self._observation(raw), {}

    def step(self, action: np.ndarray) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        """Send ``action``, wait for the next tick, read the robot."""
        self._check_usable()
        if not self._connected:
            raise RuntimeError(f"{self.name}: call reset() before step()")
        a = np.asarray(action, dtype=np.float32).reshape(self.action_space.shape)
        if not np.all(np.isfinite(a)):
            raise ValueError(f"{self.name}: the action has non-finite values {a.tolist()}; nothing was sent")
        a = np.clip(a, self.action_space.low, self.action_space.high)
        sent_raw = self._call("send_action", lambda: self.robot.send_action(
            {k: float(v) for k, v in zip(self.action_keys, a)}))
        sent = self._sent_vector(sent_raw)
        now = time.perf_counter()
        late = now > self._next_tick
        if late:
            self.late_steps += 1
            self._next_tick = now  # restart the clock here: no burst of steps to catch up
        else:
            time.sleep(self._next_tick - now)
        raw = self._call("get_observation", self.robot.get_observation)
        self._next_tick += self.period
        self._t += 1
        reward = float(self.reward_fn(raw, sent_raw)) if self.reward_fn is not None else 0.0
        info = {"sent_action": sent, "late": late}
        return self._observation(raw), reward, False, self._t >= self.episode_steps, info

    def close(self) -> None:
        """Disconnect the robot if it was ever connected (or a connect was attempted), with a timeout.

        Never raises and never hangs: a disconnect that fails or times out is a RuntimeWarning.
        Idempotent.
        """
        if self._connect_started:
            self._connect_started = self._connected = False
            try:
                self._call("disconnect", self._disconnect, record=False)
            except RobotError as error:
                warnings.warn(str(error), RuntimeWarning, stacklevel=2)
        self._calls.stop()

    # -- robot calls -------------------------------------------------------------------------------
    def _connect(self) -> None:
        self._connect_started = True
        self._call("connect", lambda: self.robot.connect(calibrate=True), self.config.connect_timeout_s)
        self._connected = True

    def _disconnect(self) -> None:
        if self.robot.is_connected:
            self.robot.disconnect()

    def _call(self, what: str, fn: Callable[[], T], timeout_s: float | None = None, record: bool = True) -> T:
        """``fn()`` on the robot thread within ``timeout_s`` (default the config's); a call that times
        out or raises is a RobotError, kept (``record``) so that later steps fail at once."""
        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        try:
            return self._calls.run(fn, timeout_s)
        except _Timeout:
            message = f"robot {self.name} did not answer {what} within {timeout_s:g} s: {_HINTS[what]}"
        except Exception as error:
            message = f"robot {self.name} failed in {what}: {type(error).__name__}: {one_line(error)}; {_HINTS[what]}"
        if record:
            self._failure = message
        raise RobotError(message)

    def _check_usable(self) -> None:
        if self._failure is not None:
            raise RobotError(f"{self._failure} (the env is unusable since; close it and make a new one)")

    # -- conversions -------------------------------------------------------------------------------
    def _observation(self, raw: dict[str, Any]) -> dict[str, np.ndarray]:
        """The robot's observation dict as ``{"state", "frame"}``."""
        missing = [k for k in (*self.state_keys, self.camera) if k not in raw]
        if missing:
            raise RobotError(f"robot {self.name}'s get_observation gave no {', '.join(missing)}, which its "
                             "observation_features declare")
        state = np.array([raw[k] for k in self.state_keys], dtype=np.float32)
        picture = np.asarray(raw[self.camera])
        if picture.ndim != 3 or picture.shape[2] < 3:
            raise RobotError(f"robot {self.name}'s camera {self.camera!r} gave an array of shape {picture.shape}, "
                             "expected (H, W, 3)")
        size = self.frame_size
        if picture.shape[:2] != (size, size):
            picture = cv2.resize(picture[..., :3], (size, size), interpolation=cv2.INTER_AREA)
        return {"state": state, "frame": np.ascontiguousarray(picture[..., :3], dtype=np.uint8)}

    def _sent_vector(self, sent: Any) -> np.ndarray:
        """What `send_action` returned, as float32 in action order."""
        missing = [k for k in self.action_keys if not isinstance(sent, dict) or k not in sent]
        if missing:
            raise RobotError(f"robot {self.name}'s send_action returned no {', '.join(missing)}: it must return "
                             "the action it sent, one value per action feature")
        return np.array([sent[k] for k in self.action_keys], dtype=np.float32)


_HINTS: dict[str, str] = {
    "connect": "is it powered and plugged in, are the config's \"robot\" settings (its port) right, "
               "and is no other program using it?",
    "get_observation": "is it still powered and plugged in (its cable, its cameras)? "
                       "raise \"timeout_s\" in --robot-config if it is just slow",
    "send_action": "is it still powered and plugged in? raise \"timeout_s\" in --robot-config if it is just slow",
    "disconnect": "it may still be holding its position; check it and power it off if needed",
}


def _features(robot: Any, name: str) -> tuple[list[str], list[str], list[str]]:
    """(state keys, camera keys, action keys) from the robot's feature dicts, in declared order."""
    observed, acted = robot.observation_features, robot.action_features
    state = [k for k, t in observed.items() if t in (float, int)]
    cameras = [k for k, t in observed.items() if isinstance(t, tuple) and len(t) == 3 and t[2] == 3]
    other = [f"{k}: {t!r}" for k, t in observed.items() if k not in state and k not in cameras]
    if other:
        raise ValueError(f"robot {name} has observation features this bridge cannot map: {', '.join(other)} "
                         "(it takes float values and (H, W, 3) cameras)")
    if not cameras:
        raise ValueError(f"robot {name} has no camera among its observation_features "
                         f"({', '.join(observed)}): the agent needs a (H, W, 3) picture")
    bad = [f"{k}: {t!r}" for k, t in acted.items() if t not in (float, int)]
    if bad or not acted:
        raise ValueError(f"robot {name}'s action features must be floats, one per motor; got "
                         + (", ".join(bad) if bad else "none"))
    return state, cameras, list(acted)


def _action_limits(config: RobotConfig, keys: list[str], name: str) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of the action space from the config, checked against the action features."""
    n = len(keys)
    low = np.array(config.action_low if config.action_low is not None else [-1.0] * n, np.float32)
    high = np.array(config.action_high if config.action_high is not None else [1.0] * n, np.float32)
    for label, limits in (("action_low", low), ("action_high", high)):
        if len(limits) != n:
            raise ValueError(f"--robot-config: {label} has {len(limits)} numbers but robot {name} has {n} action "
                             f"features ({', '.join(keys)}): give one per feature, in that order")
    if not np.all(low < high):
        raise ValueError(f"--robot-config: action_low must be below action_high for every feature, "
                         f"got {low.tolist()} and {high.tolist()}")
    return low, high


# -- calls with a timeout ---------------------------------------------------------------------------
class _Timeout(Exception):
    """A robot call did not return in time."""


class _RobotThread:
    """Runs calls one at a time on a daemon thread, each with a timeout.

    One thread for every call keeps the robot's thread-bound state (an OpenGL context, a serial
    port's owner) in one place. A call that overruns leaves its thread behind (a daemon: it cannot
    keep the process alive) and the next call starts a fresh thread, so a robot stuck in a read can
    still be asked to disconnect.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue | None = None

    def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        """``fn()``'s result; its exception as is; `_Timeout` if it takes longer than ``timeout_s``."""
        if self._queue is None:
            self._queue = queue.SimpleQueue()
            threading.Thread(target=_serve, args=(self._queue,), name=self.name, daemon=True).start()
        done: Future = Future()
        self._queue.put((fn, done))
        try:
            error = done.exception(timeout_s)
        except TimeoutError:
            self.stop()  # the stuck thread ends if its call ever returns
            raise _Timeout() from None
        if error is not None:
            raise error
        return done.result()

    def stop(self) -> None:
        """End the thread after the calls already queued."""
        if self._queue is not None:
            self._queue.put(None)
            self._queue = None


def _serve(calls: queue.SimpleQueue) -> None:
    """The robot thread: run each queued call and settle its future, until a None."""
    while (item := calls.get()) is not None:
        fn, done = item
        try:
            done.set_result(fn())
        except BaseException as error:  # noqa: BLE001  (handed to the caller, who decides)
            done.set_exception(error)
