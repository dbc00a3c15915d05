"""Captions of Meta-World renders, read from the simulator's state: what the arm does to the task's object.

Grammar (18 captions): ``the arm PHASE``, followed by `` and the task is done`` once the episode has
succeeded. One grammar for every Meta-World task: "the object" is the thing the task is about, the
point ``obs[4:7]`` (the puck, the button, the drawer, the lock, the handle, …), except in the reach
tasks, whose target is the red goal sphere (their puck is the table's colour and never touched).

| phase                             | when (over the last `WINDOW` frames, in metres)                          |
|-----------------------------------|--------------------------------------------------------------------------|
| `lifts the object`                | held (fingers within `HOLD` of it), off the table by `LIFT`, rising `RISE` |
| `carries the object`              | held and off the table, moving `MOVED`                                   |
| `holds the object up`             | held and off the table, otherwise                                        |
| `drops the object`                | off the table, not held, moving `MOVED` (falling)                        |
| `pushes the object`               | the object moved `MOVED` along the table (a press, a slide, a push)      |
| `closes on the object`            | the fingers within `HOLD` of it, the gripper closing by `GRIP`           |
| `releases the object`             | the fingers within `HOLD` of it, the gripper opening by `GRIP`           |
| `reaches toward the object`       | the hand `REACH` closer to it, with most (`STEADY`) of its travel        |
| `moves away`                      | the hand `REACH` farther from it, with most of its travel                |
| `idles`                           | otherwise: a hand at rest, creeping, or jittering (random actions)       |

The first matching row wins. Everything is a position the frames show, compared over a window of
frames, never a velocity: the state's velocities include the latest action, which no frame shows yet.
"Off the table" is above where the object rested at the episode's first frame. "The task is done" is
latched: Meta-World counts an episode a success if ``info["success"]`` was 1 at any step, and a run
ends the episode there (a handle pressed past its goal reads 0 again, but the task was done).

Why these numbers (measured on the six tasks of ``mw-easy`` and pick-place): the hand moves at most
1 cm a step (action scale 1/100) and a 64×64 ``corner2`` frame shows about 0.35 px per cm, so a
motion needs a few frames to show: `WINDOW` = 4 frames (the captioner's second difference channel
spans 4 too). Random actions move the hand 1.4–4.9 mm a frame (10th–90th percentile; the arm
smooths the jumps of its target) in ever-changing directions and seldom closes `REACH` on anything
within a window, so it reads ``idles`` (~90% of its frames). The scripted expert travels 5–12 mm a
frame straight at its target, then creeps or holds at 0–3 mm a frame. A gripped puck sits ~1 cm
from the fingers' centre; pads closing on it take ``obs[3]`` from 1 to ~0.5.

Why one ``idles`` for a hand at rest, creeping and jittering: a 64×64 frame shows 1 mm a frame as
~0.04 px, so no frame tells a stopped hand from the expert's creep after it arrives or from slow
jitter; the grammar had ``stays still`` (under 1 mm a frame) and ``moves`` apart, and a quarter of the
captioner's mistakes were those two swapped (BENCHMARKS.md). Its slowing approach still crosses
`REACH` at speeds the frames barely show, where most of the errors left gather.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

PHASES: tuple[str, ...] = (
    "reaches toward the object", "closes on the object", "lifts the object", "carries the object",
    "holds the object up", "drops the object", "pushes the object", "releases the object", "moves away", "idles",
)
DONE = " and the task is done"
ARM_CAPTIONS: tuple[str, ...] = tuple(f"the arm {p}{d}" for p in PHASES for d in ("", DONE))
REACH_TASKS = frozenset({"reach-v3", "reach-wall-v3"})  # the object is the goal sphere

WINDOW = 4  # frames a motion is measured over
HOLD = 0.03  # fingers' centre within this of the object: at it (gripped, if off the table)
LIFT = 0.02  # the object this far above where it rested: off the table
RISE = 0.01  # a held object rising this much over the window: lifted
MOVED = 0.01  # the object moving this much over the window
GRIP = 0.1  # the gripper's opening (0 closed … 1 open) changing this much over the window
REACH = 0.015  # the hand closing on (or leaving) the object this much over the window: reaching (leaving)
STEADY = 0.6  # … with this fraction of its travel at least


@dataclass(frozen=True)
class ArmView:
    """What one frame of a Meta-World scene shows, in world metres."""

    hand: np.ndarray  # (3,) the fingers' centre (tcp_center)
    opening: float  # the gripper's opening, 0 closed … 1 open (obs[3])
    obj: np.ndarray  # (3,) the task's object (obs[4:7]; the goal, _target_pos, in the reach tasks)
    success: bool  # info["success"] of the step that led to this frame (False at a reset)


def arm_view(env, state: np.ndarray, success: bool, task: str) -> ArmView:
    """The :class:`ArmView` of a Meta-World env (any wrapper of it) whose latest observation is ``state``."""
    inner = env.unwrapped
    obj = inner._target_pos if task in REACH_TASKS else state[4:7]
    return ArmView(np.array(inner.tcp_center, dtype=np.float64), float(state[3]), np.array(obj, dtype=np.float64),
                   bool(success))


def arm_phase(views: Sequence[ArmView], rest_z: float) -> str:
    """The phase of the newest of ``views`` (oldest first, at most `WINDOW` + 1 frames of one episode);
    ``rest_z`` is the object's height at the episode's first frame."""
    now, then = views[-1], views[0]
    frames = len(views) - 1
    if frames == 0:  # an episode's first frame shows no motion yet
        return "idles"
    dist = np.linalg.norm(now.hand - now.obj)
    held = dist < HOLD
    lifted = now.obj[2] - rest_z > LIFT
    moved = np.linalg.norm(now.obj - then.obj) > MOVED * frames / WINDOW
    if lifted and held:
        if now.obj[2] - then.obj[2] > RISE * frames / WINDOW:
            return "lifts the object"
        return "carries the object" if moved else "holds the object up"
    if moved:
        return "drops the object" if lifted else "pushes the object"
    if held and abs(now.opening - then.opening) > GRIP * frames / WINDOW:
        return "closes on the object" if now.opening < then.opening else "releases the object"
    hands = np.stack([v.hand for v in views])
    travel = float(np.linalg.norm(np.diff(hands, axis=0), axis=1).sum())
    closing = np.linalg.norm(then.hand - then.obj) - dist
    steady = max(STEADY * travel, REACH * frames / WINDOW)
    if closing > steady:
        return "reaches toward the object"
    return "moves away" if -closing > steady else "idles"


class ArmCaptioner:
    """Captions one Meta-World env's frames in order: call it with each frame's :class:`ArmView`,
    ``reset`` at each episode start."""

    def __init__(self) -> None:
        self.views: collections.deque[ArmView] = collections.deque(maxlen=WINDOW + 1)
        self.rest_z = 0.0
        self.done = False

    def reset(self) -> None:
        self.views.clear()
        self.done = False

    def __call__(self, view: ArmView) -> str:
        if not self.views:
            self.rest_z = float(view.obj[2])
        self.views.append(view)
        self.done = self.done or view.success
        return f"the arm {arm_phase(self.views, self.rest_z)}" + (DONE if self.done else "")


@dataclass(frozen=True)
class EpisodeMix:
    """How the episodes of a caption stream are played (``play="mixed"``, the training data): each
    episode draws a policy, so that every caption occurs — the expert's reach, grasp, lift and carry,
    its presses and pushes; noise and random actions for jitter, slips, drops and moves away."""

    expert: float = 0.4  # Meta-World's scripted expert
    noisy: float = 0.35  # the expert plus Gaussian noise of a std drawn from `noise` per episode
    noise: tuple[float, float] = (0.2, 1.0)
    # the rest: uniform random actions
    random_after_success: float = 0.3  # an (noisy) expert episode plays random actions once it succeeded
    linger: tuple[int, int] = (16, 64)  # frames an episode goes on after its first success
    max_frames: int = 200  # an episode's frames at most (Meta-World stops at 500)


PLAYS: tuple[str, ...] = ("mixed", "expert", "random")


class ArmStream:
    """One Meta-World env played episode after episode; ``next(n)`` → frames (n, S, S, 3) and the
    caption of each. ``play``: ``mixed`` (`EpisodeMix`), ``expert`` or ``random`` (every episode so).

    Seeds below `envs.seeds.EVAL_BASE` are training streams: their env is seeded in the
    demonstrations' range (``DEMO_BASE + seed``), apart from every run's and every evaluation's."""

    def __init__(self, env_id: str, seed: int, frame_size: int = 64, play: str = "mixed",
                 mix: EpisodeMix = EpisodeMix()) -> None:
        from envs.metaworld import check_id, expert
        from envs.options import EnvOptions
        from envs.registry import make
        from envs.seeds import DEMO_BASE, EVAL_BASE

        if play not in PLAYS:
            raise ValueError(f"play {play!r}: choose one of {', '.join(PLAYS)}")
        self.task, self.play, self.mix = check_id(env_id), play, mix
        env_seed = seed if seed >= EVAL_BASE else DEMO_BASE + seed
        self.env = make(env_id, frame_size=frame_size, seed=env_seed, options=EnvOptions(full_episodes=True))
        self.expert = expert(self.task)
        self.rng = np.random.default_rng(env_seed)
        self.captioner = ArmCaptioner()
        self._new_episode(self.env.reset()[0])

    def _new_episode(self, obs: dict) -> None:
        self.obs, self.success = obs, False
        self.frames = self.succeeded_at = 0
        kind = self.play
        if kind == "mixed":
            kind = self.rng.choice(["expert", "noisy", "random"], p=[self.mix.expert, self.mix.noisy,
                                                                     1 - self.mix.expert - self.mix.noisy])
        self.kind = kind
        self.noise = self.rng.uniform(*self.mix.noise) if kind == "noisy" else 0.0
        self.linger = int(self.rng.integers(*self.mix.linger, endpoint=True))
        self.random_after = self.play == "mixed" and self.rng.random() < self.mix.random_after_success
        self.captioner.reset()

    def _action(self) -> np.ndarray:
        if self.kind == "random" or (self.random_after and self.succeeded_at):
            return self.rng.uniform(-1.0, 1.0, 4).astype(np.float32)
        action = self.expert(self.obs["state"])
        if self.noise:
            action = np.clip(action + self.rng.normal(0.0, self.noise, 4), -1.0, 1.0).astype(np.float32)
        return action

    def _advance(self) -> tuple[np.ndarray, str, bool]:
        """The current frame, its caption, and whether it is its episode's last; then on to the next frame."""
        frame = self.obs["frame"]
        self.view = arm_view(self.env, self.obs["state"], self.success, self.task)
        caption = self.captioner(self.view)
        self.frames += 1
        if self.captioner.done and not self.succeeded_at:
            self.succeeded_at = self.frames
        if self.frames >= self.mix.max_frames or (self.succeeded_at and self.frames - self.succeeded_at >= self.linger):
            self._new_episode(self.env.reset()[0])
            return frame, caption, True
        self.obs, _, terminated, truncated, info = self.env.step(self._action())
        self.success = info["success"]
        if terminated or truncated:
            self._new_episode(self.env.reset()[0])
        return frame, caption, bool(terminated or truncated)

    def next(self, n_frames: int) -> tuple[np.ndarray, list[str]]:
        frames, captions = zip(*(self._advance()[:2] for _ in range(n_frames)))
        return np.stack(frames), list(captions)

    def episode(self) -> tuple[np.ndarray, list[str], list[ArmView]]:
        """Frames (T, S, S, 3), captions and what each frame shows, from here to the end of the current
        episode (all of the next one, called where one ended)."""
        frames, captions, views, ended = [], [], [], False
        while not ended:
            frame, caption, ended = self._advance()
            frames.append(frame)
            captions.append(caption)
            views.append(self.view)
        return np.stack(frames), captions, views
