"""Task sequences for continual learning: one env per task, learned one task after another.

`thalamus run --tasks NAME` steps task 0, then task 1, …; every task's env has the same spaces and
the `{"state", "frame"}` observation of `envs.make`, so the agent never changes shape mid-run.

| sequence            | tasks | what changes from task to task                         | targets |
|---------------------|-------|--------------------------------------------------------|---------|
| `cartpole-physics`  | 4     | CartPole-v1's physics (see `CARTPOLE_VARIANTS`)        | no      |
| `split-digits`      | 5     | the digit classes shown: {0,1}, {2,3}, …, {8,9}        | yes     |
| `split-digits-task` | 5     | as split-digits; scored among the task's 2 classes     | yes     |
| `permuted-digits`   | 10    | a fixed pixel permutation (task 0: none)               | yes     |
| `cw10`              | 10    | the Meta-World skill (Continual World's CW10, as v3)   | no      |
| `mw-easy`           | 5     | a Meta-World skill a small policy learns on two cores  | no      |

The digit data and splits are `envs.digits`'s; only the TRAIN split is ever shown. Tasks with targets
put the true label of every step in `info["target"]`, so a run can store it and be scored later
without the env.

Example:
    >>> seq = task_sequence("split-digits")
    >>> seq.n_tasks, seq.names[1], seq.has_targets
    (5, 'digits 2 and 3', True)
    >>> env = seq.make(1, frame_size=32, seed=0)
    >>> obs, info = env.reset()
    >>> obs["state"].shape, obs["frame"].shape, int(info["target"]) in (2, 3)
    ((64,), (32, 32, 3), True)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import cv2
import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.classic_control import CartPoleEnv

from envs.digits import DIGIT_SEQUENCES, DigitsTask, digits_tasks
from envs import metaworld
from envs.options import EnvOptions
from envs.registry import SeedFirstReset, make

# Continual World's CW10 (arXiv 2105.10919), in its order, as Meta-World v3 tasks.
CW10: tuple[str, ...] = ("hammer-v3", "push-wall-v3", "faucet-close-v3", "push-back-v3", "stick-pull-v3",
                         "handle-press-side-v3", "push-v3", "shelf-place-v3", "window-close-v3", "peg-unplug-side-v3")
# Five short Meta-World skills, each a single motion to a fixed-ish target: reachable by a small PPO
# policy in minutes on two cores, for tests and quick benchmarks.
MW_EASY: tuple[str, ...] = ("reach-v3", "button-press-topdown-v3", "drawer-close-v3", "door-lock-v3",
                            "handle-press-v3")
METAWORLD_SEQUENCES: dict[str, tuple[str, ...]] = {"cw10": CW10, "mw-easy": MW_EASY}
TASK_SEQUENCES: tuple[str, ...] = ("cartpole-physics", *DIGIT_SEQUENCES, *METAWORLD_SEQUENCES)
DIGITS_EPISODE_LENGTH = 16  # samples answered per digits episode


@dataclass(frozen=True)
class TaskSequence:
    """An ordered list of tasks and the way to make each one's env.

    Every task's env has the same observation and action spaces. ``task_classes`` is set for a
    task-incremental sequence: the labels a task's score picks among (the task id is known at test
    time); otherwise a score picks among every action.
    """

    name: str
    names: tuple[str, ...]
    has_targets: bool  # every step's info carries "target", the right action
    base_env: str | None  # the Gymnasium id whose variants the tasks are (None: not a Gymnasium env)
    factory: Callable[[int, int, int | None, EnvOptions], gymnasium.Env] = field(repr=False, compare=False)
    task_classes: tuple[tuple[int, ...], ...] | None = None

    @property
    def n_tasks(self) -> int:
        return len(self.names)

    def make(self, task_index: int, frame_size: int = 64, seed: int | None = None,
             options: EnvOptions = EnvOptions()) -> gymnasium.Env:
        """The env of task ``task_index``; with ``seed``, seeded as `envs.make` seeds (first reset
        and action space); ``options`` as `envs.make` takes them (Meta-World's, for its sequences)."""
        if not 0 <= task_index < self.n_tasks:
            raise ValueError(f"{self.name} has tasks 0..{self.n_tasks - 1}, got task {task_index}")
        if frame_size < 1:
            raise ValueError(f"frame_size must be a positive number of pixels, got {frame_size}")
        if options != EnvOptions() and self.name not in METAWORLD_SEQUENCES:
            raise ValueError(f"--camera and --full-episodes are for Meta-World sequences, not {self.name}")
        return self.factory(task_index, frame_size, seed, options)

    @property
    def reports_success(self) -> bool:
        """Whether its envs say in ``info["success"]`` when a step achieved the task (Meta-World's)."""
        return self.name in METAWORLD_SEQUENCES


def task_sequence(name: str) -> TaskSequence:
    """The task sequence called ``name`` (one of ``TASK_SEQUENCES``); ValueError lists the names."""
    if name == "cartpole-physics":
        return TaskSequence(name, tuple(v.name for v in CARTPOLE_VARIANTS), has_targets=False,
                            base_env="CartPole-v1", factory=_make_cartpole)
    if name in DIGIT_SEQUENCES:
        tasks = digits_tasks(name)

        def factory(task_index: int, frame_size: int, seed: int | None, options: EnvOptions) -> gymnasium.Env:
            env = DigitsTaskEnv(tasks[task_index], frame_size)
            return env if seed is None else SeedFirstReset(env, seed)

        classes = tuple(t.classes for t in tasks) if name == "split-digits-task" else None
        return TaskSequence(name, tuple(t.name for t in tasks), has_targets=True, base_env=None,
                            factory=factory, task_classes=classes)
    if name in METAWORLD_SEQUENCES:
        skills = METAWORLD_SEQUENCES[name]

        def make_skill(task_index: int, frame_size: int, seed: int | None, options: EnvOptions) -> gymnasium.Env:
            return make(metaworld.PREFIX + skills[task_index], frame_size=frame_size, seed=seed, options=options)

        return TaskSequence(name, skills, has_targets=False, base_env=None, factory=make_skill)
    raise ValueError(f"unknown task sequence {name!r}; choose one of: {', '.join(TASK_SEQUENCES)}")


# -- cartpole-physics ---------------------------------------------------------------------------
@dataclass(frozen=True)
class CartPolePhysics:
    """The constants of gymnasium's CartPoleEnv that a variant changes (defaults: CartPole-v1's)."""

    name: str
    gravity: float = 9.8
    masscart: float = 1.0
    masspole: float = 0.1
    length: float = 0.5  # half the pole's length, as CartPoleEnv counts it (the frame shows 2x)
    force_mag: float = 10.0  # the push of one action, in newtons

    def apply(self, env: CartPoleEnv) -> None:
        """Set the constants on ``env``, and the two that CartPoleEnv derives from them once."""
        env.gravity, env.masscart, env.masspole = self.gravity, self.masscart, self.masspole
        env.length, env.force_mag = self.length, self.force_mag
        env.total_mass = self.masspole + self.masscart
        env.polemass_length = self.masspole * self.length


# One change at a time, each large enough that a controller (and a world model) tuned for the
# default is wrong: a pole 10x heavier, a pole twice as long (and drawn so), half the push.
CARTPOLE_VARIANTS: tuple[CartPolePhysics, ...] = (
    CartPolePhysics("default"),
    CartPolePhysics("heavy pole", masspole=1.0),
    CartPolePhysics("long pole", length=1.0),
    CartPolePhysics("weak push", force_mag=5.0),
)


def _make_cartpole(task_index: int, frame_size: int, seed: int | None, options: EnvOptions) -> gymnasium.Env:
    """CartPole-v1 as `envs.make` gives it (camera, time limit, seeding), with the variant's physics."""
    env = make("CartPole-v1", frame_size=frame_size, seed=seed)
    CARTPOLE_VARIANTS[task_index].apply(env.unwrapped)
    return env


# -- digits -------------------------------------------------------------------------------------
def digit_frame(pixels: np.ndarray, size: int) -> np.ndarray:
    """An 8x8 digit (64 values in [0, 1], 1 = ink) as a (size, size, 3) uint8 RGB frame: dark ink
    on white, each digit pixel a square block (nearest-neighbour), as a camera over the paper."""
    gray = np.rint(255.0 * (1.0 - np.clip(pixels, 0.0, 1.0))).astype(np.uint8).reshape(8, 8)
    gray = cv2.resize(gray, (size, size), interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))


class DigitsTaskEnv(gymnasium.Env):
    """Name the digit shown: one digits task (`envs.digits.DigitsTask`) as an episodic env.

    ## Observation Space

    | key       | space                           | what                                      |
    |-----------|---------------------------------|-------------------------------------------|
    | `"state"` | `Box(0, 1, (64,), float32)`     | the digit's 8x8 pixels (1 = ink), flat     |
    | `"frame"` | `Box(0, 255, (F, F, 3), uint8)` | the same digit drawn (`digit_frame`)      |

    ## Action Space

    `Discrete(10)`: the label guessed.

    ## Rewards

    1.0 if the guess is the digit's label, else 0.0. `info["target"]` of a step is the label of the
    digit the action answered; `info["target"]` of a reset is the label of the digit shown.

    ## Episodes

    An episode shows `episode_length` digits of the task's TRAIN split, one per step, and then
    terminates (a fixed set of questions, not a time limit). Digits come in the order of a
    permutation of the split drawn from `np_random`, walked through episode after episode and
    redrawn when used up, so every training digit is shown once per pass. `reset(seed=...)`
    restarts the walk from a fresh permutation.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"]}

    def __init__(self, task: DigitsTask, frame_size: int = 64,
                 episode_length: int = DIGITS_EPISODE_LENGTH, render_mode: str | None = None) -> None:
        if not 1 <= episode_length <= len(task.train_y):
            raise ValueError(f"episode_length must be between 1 and the task's {len(task.train_y)} "
                             f"training digits, got {episode_length}")
        self.task, self.frame_size, self.episode_length = task, frame_size, episode_length
        self.render_mode = render_mode
        self.observation_space = spaces.Dict({
            "state": spaces.Box(0.0, 1.0, (64,), dtype=np.float32),
            "frame": spaces.Box(0, 255, (frame_size, frame_size, 3), dtype=np.uint8),
        })
        self.action_space = spaces.Discrete(10)
        self._order = np.zeros(0, np.int64)  # the current pass over the training digits
        self._next = 0  # position in _order of the next episode's first digit
        self._episode = np.zeros(0, np.int64)  # this episode's digits (indices into the split)
        self._t = 0  # digits answered so far in this episode

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        super().reset(seed=seed)
        if seed is not None or self._next + self.episode_length > len(self._order):
            self._order = self.np_random.permutation(len(self.task.train_y))
            self._next = 0
        self._episode = self._order[self._next:self._next + self.episode_length]
        self._next += self.episode_length
        self._t = 0
        return self._observation(), {"target": self._target()}

    def step(self, action: Any) -> tuple[dict[str, np.ndarray], float, bool, bool, dict[str, Any]]:
        assert self.action_space.contains(action), f"{action!r} ({type(action).__name__}) is not a label 0..9"
        assert self._t < len(self._episode), "step() after the episode ended: call reset()"
        target = self._target()
        reward = 1.0 if int(action) == target else 0.0
        self._t += 1
        terminated = self._t == len(self._episode)
        # after the last answer the last digit stays in view: nothing is left to show
        return self._observation(), reward, terminated, False, {"target": target}

    def render(self) -> np.ndarray:
        return self._observation()["frame"]

    def _index(self) -> int:
        """Index into the training split of the digit in view."""
        return int(self._episode[min(self._t, len(self._episode) - 1)])

    def _target(self) -> int:
        return int(self.task.train_y[self._index()])

    def _observation(self) -> dict[str, np.ndarray]:
        pixels = self.task.train_x[self._index()]
        return {"state": pixels.astype(np.float32), "frame": digit_frame(pixels, self.frame_size)}
