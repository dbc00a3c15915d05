"""EnvActor: steps a batch of environments and sends every finished episode to the recorder.

Given a task sequence (``envs.tasks``), it steps one task's envs at a time; ``switch_task`` moves
all of them to the next task.
"""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np

import envs
from agent.channels import LatencyMeter
from agent.messages import Action, Episode, Observation, decode, encode
from agent.outbox import Outbox
from envs.mujoco_render import is_mujoco
from envs.tasks import task_sequence
from memory import ArraySpec


def store_specs(spec: dict[str, Any], caption_len: int = 0) -> dict[str, ArraySpec]:
    """The per-step arrays of the run store for an env of this ``spec`` (see :meth:`EnvActor.spec`);
    with ``caption_len`` > 0, also each step's caption as int16 token ids (``<pad>``-filled); for
    tasks with targets (``spec["targets"]``), each step's true label (the right action)."""
    specs = {
        "obs": ArraySpec((spec["state_dim"],), "float32"),
        "frame": ArraySpec(tuple(spec["frame_shape"]), "uint8"),
        "action": ArraySpec(tuple(spec["action_shape"]), "int64" if spec["discrete"] else "float32"),
        "reward": ArraySpec((), "float32"),
        "terminated": ArraySpec((), "bool"),
        "truncated": ArraySpec((), "bool"),
        "task": ArraySpec((), "int32"),
        "time": ArraySpec((), "float64"),
    }
    if caption_len:
        specs["caption"] = ArraySpec((caption_len,), "int16")
    if spec.get("targets"):
        specs["target"] = ArraySpec((), "int64")
    return specs


class EnvActor:
    """``num_envs`` copies of one env, stepped together; autoresets finished ones.

    Each store row is ``(obs, frame, action, reward, terminated, truncated, task, time[, caption]
    [, target])``: the observation an action was taken on, the action, what followed it,
    perception's caption of the frame (when ``caption_len`` > 0, each action message carries it)
    and, for tasks with targets, the right action (the env's ``info["target"]``).

    With ``sequence`` (a name of ``envs.tasks.TASK_SEQUENCES``) the envs are task ``task`` of that
    sequence instead of ``env_id``; env ``i`` of task ``t`` is seeded ``seed + t * num_envs + i``.
    """

    def __init__(self, env_id: str, num_envs: int, frame_size: int, seed: int,
                 task: int = 0, max_episodes: int | None = None, caption_len: int = 0,
                 sequence: str | None = None) -> None:
        self.env_id, self.num_envs, self.frame_size, self.seed = env_id, num_envs, frame_size, seed
        self.sequence = task_sequence(sequence) if sequence is not None else None
        self.task, self.max_episodes, self.caption_len = task, max_episodes, caption_len
        self.envs = self._make_envs()
        self.targets = self.sequence is not None and self.sequence.has_targets
        self.discrete = hasattr(self.envs[0].action_space, "n")
        self.dtypes = {k: np.dtype(v.dtype) for k, v in store_specs(self.spec(), caption_len).items()}
        self.recorder: Outbox | None = None
        self.hop = LatencyMeter()
        self.t0 = time.time()
        self.state = self.frame = None
        self.buffers: list[dict[str, list]] = [collections.defaultdict(list) for _ in self.envs]
        self.episode_return = np.zeros(num_envs)
        self.returns: collections.deque[float] = collections.deque(maxlen=20)
        self.task_returns: list[float | None] = []  # each task's mean return of its last 20 episodes
        self.last: Observation | None = None  # the latest step's observation batch
        self.steps = self.episodes = self.batch_step = 0

    def continue_from(self, steps: int, episodes: int, started: float) -> None:
        """A resumed run: count on from the ``steps`` and ``episodes`` its store holds, and stamp
        rows with seconds since the run first ``started`` (wall clock), as its first rows were."""
        self.steps, self.episodes, self.t0 = steps, episodes, started
        self.batch_step = steps // self.num_envs

    def _make_envs(self) -> list[Any]:
        """The envs of ``self.task`` (of the sequence), or of ``env_id``."""
        if self.sequence is None:
            return [envs.make(self.env_id, frame_size=self.frame_size, seed=self.seed + i)
                    for i in range(self.num_envs)]
        first_seed = self.seed + self.task * self.num_envs
        return [self.sequence.make(self.task, self.frame_size, first_seed + i) for i in range(self.num_envs)]

    def attach_recorder(self, recorder: Any) -> None:
        """Send every finished episode to ``recorder.add`` (blocking when 16 are in flight)."""
        self.recorder = Outbox("env→recorder", recorder, "add", window=16)

    def spec(self) -> dict[str, Any]:
        """Shapes of what this env produces and accepts."""
        env = self.envs[0]
        space = env.action_space
        out = {"state_dim": int(env.observation_space["state"].shape[0]),
               "frame_shape": tuple(env.observation_space["frame"].shape),
               "discrete": self.discrete, "targets": self.targets,
               "gl": is_mujoco(env.unwrapped)}  # its camera is an OpenGL context, current on one thread
        if self.discrete:
            out.update(action_dim=int(space.n), action_shape=())
        else:
            out.update(action_dim=int(np.prod(space.shape)), action_shape=tuple(space.shape),
                       action_low=space.low.astype(np.float32), action_high=space.high.astype(np.float32))
        return out

    def reset(self) -> bytes:
        """Reset every env (seeded at construction) and return the first observation batch."""
        self._reset_envs()
        n = len(self.envs)
        self.last = None
        return encode(Observation(step=self.batch_step, state=self.state, frame=self.frame,
                                  reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool),
                                  truncated=np.zeros(n, bool)))

    def current(self) -> bytes:
        """The latest observation batch again (after a perception or policy actor was restarted, the
        agent goes on from here; the latest step's reward and done flags come with it)."""
        n = len(self.envs)
        last = self.last or Observation(step=self.batch_step, state=self.state, frame=self.frame,
                                        reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool),
                                        truncated=np.zeros(n, bool))
        return encode(last)

    def _reset_envs(self) -> None:
        obs = [env.reset()[0] for env in self.envs]
        self.state = np.stack([o["state"] for o in obs])
        self.frame = np.stack([o["frame"] for o in obs])

    def switch_task(self, task: int) -> bytes:
        """Move every env to task ``task`` of the sequence; returns the new task's first observation
        batch, which stands in for the latest step's (the driver drops that one unseen).

        Unfinished episodes are recorded first, their last row marked truncated, as ``finish`` does.
        So that the policy neither loses the latest rewards nor bootstraps across tasks, the batch
        carries the latest step's reward and done flags, every env is done (an env whose episode was
        cut is truncated), and each cut env's reached state is a ``final_*`` row to bootstrap from.
        """
        if self.sequence is None:
            raise RuntimeError(f"switch_task needs a task sequence; this EnvActor steps {self.env_id}")
        n = len(self.envs)
        last = self.last or Observation(reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool),
                                        truncated=np.zeros(n, bool), final_index=np.zeros(0, np.int64),
                                        final_state=self.state[:0], final_frame=self.frame[:0])
        cut = np.asarray(self._cut_episodes(), np.int64)
        cut_state, cut_frame = self.state[cut].copy(), self.frame[cut].copy()
        self._end_task()
        self.returns.clear()  # the live mean return is the current task's
        for env in self.envs:
            env.close()
        self.task = task
        self.envs = self._make_envs()
        self._reset_envs()
        self.last = None
        truncated = last.truncated.copy()
        truncated[cut] = True
        return encode(Observation(
            step=self.batch_step, state=self.state, frame=self.frame, reward=last.reward,
            terminated=last.terminated, truncated=truncated,
            final_index=np.concatenate([last.final_index, cut]),
            final_state=np.concatenate([last.final_state, cut_state]),
            final_frame=np.concatenate([last.final_frame, cut_frame])))

    def step(self, action_msg: bytes) -> bytes:
        """Apply one action per env; returns the next observation batch (reset where done)."""
        msg = decode(action_msg, Action)
        self.hop.add_ns(msg.sent_ns)
        n, now = len(self.envs), time.time() - self.t0
        reward = np.zeros(n, np.float32)
        terminated, truncated = np.zeros(n, bool), np.zeros(n, bool)
        final_index, final_state, final_frame = [], [], []
        for i, env in enumerate(self.envs):
            a = msg.action[i]
            o, r, term, trunc, info = env.step(int(a) if self.discrete else a)
            reward[i], terminated[i], truncated[i] = r, term, trunc
            buf = self.buffers[i]
            for key, value in (("obs", self.state[i].copy()), ("frame", self.frame[i].copy()), ("action", a),
                               ("reward", r), ("terminated", term), ("truncated", trunc),
                               ("task", self.task), ("time", now)):
                buf[key].append(value)
            if self.caption_len:
                buf["caption"].append(msg.caption[i])
            if self.targets:
                buf["target"].append(info["target"])
            self.episode_return[i] += r
            if term or trunc:
                self._finish_episode(i)
                if not term:
                    final_index.append(i)
                    final_state.append(o["state"])
                    final_frame.append(o["frame"])
                o, _ = env.reset()
            self.state[i], self.frame[i] = o["state"], o["frame"]
        self.steps += n
        self.batch_step += 1
        self.last = Observation(
            step=self.batch_step, state=self.state, frame=self.frame, reward=reward,
            terminated=terminated, truncated=truncated, final_index=np.asarray(final_index, np.int64),
            final_state=np.stack(final_state) if final_index else self.state[:0].copy(),
            final_frame=np.stack(final_frame) if final_index else self.frame[:0].copy())
        return encode(self.last)

    def _finish_episode(self, i: int, complete: bool = True) -> None:
        """Count a finished episode and send it to the recorder; a run's last, cut-short
        episodes (``complete=False``) are recorded but not counted in the returns."""
        buf = self.buffers[i]
        budget_left = self.max_episodes is None or self.episodes < self.max_episodes
        if complete and budget_left:
            self.returns.append(float(self.episode_return[i]))
            self.episodes += 1
        self.episode_return[i] = 0.0
        if self.recorder is not None and budget_left:
            data = {k: np.asarray(v, dtype=self.dtypes[k]) for k, v in buf.items()}
            self.recorder.send(encode(Episode(env_index=i, task=self.task, data=data)))
        self.buffers[i] = collections.defaultdict(list)

    def _cut_episodes(self) -> list[int]:
        """Record every env's unfinished episode, its last row marked truncated; returns those envs."""
        cut = []
        for i, buf in enumerate(self.buffers):
            if buf["reward"]:
                buf["truncated"][-1] = True
                self._finish_episode(i, complete=False)
                cut.append(i)
        return cut

    def _end_task(self) -> None:
        """Keep the task's mean return of its last 20 episodes (None if none finished)."""
        self.task_returns.append(float(np.mean(self.returns)) if self.returns else None)

    def finish(self) -> dict[str, Any]:
        """End the run: record unfinished episodes (last row marked truncated), drain sends."""
        self._cut_episodes()
        if self.sequence is not None:
            self._end_task()
        if self.recorder is not None:
            self.recorder.drain()
        for env in self.envs:
            env.close()
        return self.progress()

    def progress(self, recent_s: float | None = None) -> dict[str, Any]:
        """Counters for the live display and the summary (latency over the last ``recent_s`` seconds)."""
        return {"steps": self.steps, "episodes": self.episodes, "task": self.task,
                "task_returns": list(self.task_returns),
                "mean_return_last20": float(np.mean(self.returns)) if self.returns else float("nan"),
                "hop_policy_env": self.hop.summary(recent_s),
                "channel_recorder": self.recorder.stats().to_dict() if self.recorder else None}
