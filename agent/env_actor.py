"""EnvActor: steps a batch of environments, heads the hot ring, and sends finished episodes to the
recorder.

Every env call (make, reset, step, close) happens on the actor's one env thread, which also runs
the ring (agent/hot_loop.py): a MuJoCo env's OpenGL context is current on the thread that made it.
The actor's own thread stays free for the driver's ``progress``, ``pause`` and ``stop``.
Given a task sequence (``envs.tasks``), it steps one task's envs at a time; ``switch_task`` moves
all of them to the next task.
"""

from __future__ import annotations

import collections
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, TypeVar

import numpy as np

import envs
from agent.channels import LatencyMeter
from agent.hot_loop import HotLoop, RingBudget
from agent.messages import Action, Episode, Observation, decode, encode
from agent.outbox import Outbox
from agent.recorder import store_specs
from agent.transport import Link
from envs.options import EnvOptions
from envs.robot import is_robot
from envs.tasks import task_sequence

T = TypeVar("T")


class EnvActor:
    """``num_envs`` copies of one env, stepped together; autoresets finished ones.

    Each store row is ``(obs, frame, action, reward, terminated, truncated, task, time, step, stopped
    [, target])``: the observation an action was taken on, the action, what followed it, and for
    tasks with targets the right action (the env's ``info["target"]``); ``step`` is the batch step,
    by which the recorder joins perception's caption of the frame; ``stopped`` marks the last row of
    an episode the run cut short (it stopped, or moved to the next task).

    With ``sequence`` (a name of ``envs.tasks.TASK_SEQUENCES``) the envs are task ``task`` of that
    sequence instead of ``env_id``; env ``i`` of task ``t`` is seeded ``seed + t * num_envs + i``.
    """

    def __init__(self, env_id: str, num_envs: int, frame_size: int, seed: int,
                 task: int = 0, max_episodes: int | None = None, sequence: str | None = None,
                 options: EnvOptions = EnvOptions()) -> None:
        self.env_id, self.num_envs, self.frame_size, self.seed = env_id, num_envs, frame_size, seed
        self.options = options
        self.sequence = task_sequence(sequence) if sequence is not None else None
        self.task, self.max_episodes = task, max_episodes
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="env")
        # env 0 now, for the spec; the rest on the env thread while the driver starts the other actors
        # (making a Meta-World env takes seconds); the ring runs on that thread too, so after them
        self.envs = self._on_env_thread(self._make_envs, 0, 1)
        self._rest = self._thread.submit(self._make_the_rest)
        self.targets = self.sequence is not None and self.sequence.has_targets
        self.reports_success = (self.sequence.reports_success if self.sequence is not None
                                else envs.reports_success(env_id))
        self.robots = is_robot(env_id)  # envs that drive a robot: disconnected on every way out (`release`)
        self.discrete = hasattr(self.envs[0].action_space, "n")
        self.dtypes = {k: np.dtype(v.dtype) for k, v in store_specs(self.spec()).items()}
        self.recorder: Outbox | None = None
        self.ring = HotLoop(self)
        self.hop = LatencyMeter()
        self.t0 = time.time()
        self.state = self.frame = None
        self.obs: bytes | None = None  # the observation batch the next action is for
        self.buffers: list[dict[str, list]] = [collections.defaultdict(list) for _ in range(num_envs)]
        self.episode_return = np.zeros(num_envs)
        self.returns: collections.deque[float] = collections.deque(maxlen=20)
        self.episode_success = np.zeros(num_envs, bool)  # env i's episode has succeeded at some step
        self.successes: collections.deque[bool] = collections.deque(maxlen=20)  # of the last 20 finished episodes
        self.task_success: list[float | None] = []  # each task's success rate over its last 20 episodes
        self.task_returns: list[float | None] = []  # each task's mean return of its last 20 episodes
        self.steps = self.episodes = self.batch_step = 0

    def _on_env_thread(self, fn: Callable[..., T], *args: Any) -> T:
        return self._thread.submit(fn, *args).result()

    # -- set-up, from the driver -------------------------------------------------------------------
    def continue_from(self, steps: int, episodes: int, started: float, returns: list[float]) -> None:
        """A resumed run: count on from the ``steps`` and ``episodes`` its store holds, with the
        ``returns`` of its last finished episodes, stamping rows with seconds since it first ``started``."""
        self.steps, self.episodes, self.t0 = steps, episodes, started
        self.batch_step = steps // self.num_envs
        self.returns.extend(returns)

    def attach(self, recorder: Any) -> None:
        """Send finished episodes to ``recorder.add`` (blocking when 16 are in flight)."""
        if recorder is not None:
            self.recorder = Outbox("env→recorder", recorder, "add", window=16)

    def spec(self) -> dict[str, Any]:
        """Shapes of what this env produces and accepts."""
        env = self.envs[0]
        space = env.action_space
        out = {"state_dim": int(env.observation_space["state"].shape[0]),
               "frame_shape": tuple(env.observation_space["frame"].shape),
               "discrete": self.discrete, "targets": self.targets, "success": self.reports_success}
        if self.discrete:
            out.update(action_dim=int(space.n), action_shape=())
        else:
            out.update(action_dim=int(np.prod(space.shape)), action_shape=tuple(space.shape),
                       action_low=space.low.astype(np.float32), action_high=space.high.astype(np.float32))
        return out

    # -- the ring, driven by the driver --------------------------------------------------------------
    def start(self, budget: RingBudget, link: Link) -> None:
        """Run the ring on the env thread until ``budget`` is spent, reaching perception and the policy
        over ``link`` (agent/transport.py); returns at once (see ``status``)."""
        self.ring.start(budget, link, self._thread)

    def status(self) -> dict[str, Any]:
        """The ring's state (``running``, ``paused``, ``done``, ``broken``, ``failed``) with the counters."""
        return {**self.ring.status(), **self.progress()}

    def watch(self, timeout_s: float) -> dict[str, Any]:
        """The status once the ring has ended, or after ``timeout_s``, whichever comes first."""
        self.ring.wait(timeout_s)
        return self.status()

    def pause(self) -> bool:
        """Hold the ring between two steps (e.g. for a checkpoint of one moment); False if it is not running."""
        return self.ring.pause()

    def go_on(self) -> None:
        self.ring.go_on()

    def stop(self) -> dict[str, Any]:
        """End the ring after the step in flight; returns the final status."""
        return self.ring.stop()

    def switch_task(self, task: int) -> None:
        """Move every env to task ``task`` of the sequence (the ring is not running)."""
        self._on_env_thread(self._switch_task, task)

    def finish(self) -> dict[str, Any]:
        """End the run: record unfinished episodes (last row marked truncated), drain sends."""
        return self._on_env_thread(self._finish)

    # -- on the env thread ---------------------------------------------------------------------------
    def _make_envs(self, first: int = 0, stop: int | None = None) -> list[Any]:
        """Envs ``first`` up to ``stop`` (default: all) of ``self.task`` (of the sequence), or of ``env_id``."""
        indices = range(first, self.num_envs if stop is None else stop)
        if self.sequence is None:
            return [envs.make(self.env_id, frame_size=self.frame_size, seed=self.seed + i, options=self.options)
                    for i in indices]
        first_seed = self.seed + self.task * self.num_envs
        return [self.sequence.make(self.task, self.frame_size, first_seed + i, self.options) for i in indices]

    def _make_the_rest(self) -> None:
        self.envs.extend(self._make_envs(first=1))

    def first_observation(self) -> bytes:
        """The observation the ring acts on next: the latest one, or every env reset at the start."""
        if self.obs is None:
            self._rest.result()  # done (it ran before this on the env thread): raises what making them raised
            obs = [env.reset()[0] for env in self.envs]
            self.state = np.stack([o["state"] for o in obs])
            self.frame = np.stack([o["frame"] for o in obs])
            n = len(self.envs)
            self.obs = encode(Observation(step=self.batch_step, state=self.state, frame=self.frame,
                                          reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool),
                                          truncated=np.zeros(n, bool)))
        return self.obs

    def _switch_task(self, task: int) -> None:
        """Unfinished episodes are recorded first, their last row marked truncated, as ``finish`` does.
        So that the policy neither loses the latest rewards nor bootstraps across tasks, the new task's
        first observation carries the latest step's reward and done flags, every env is done (an env
        whose episode was cut is truncated), and each cut env's reached state is a ``final_*`` row."""
        if self.sequence is None:
            raise RuntimeError(f"switch_task needs a task sequence; this EnvActor steps {self.env_id}")
        n = len(self.envs)
        last = (decode(self.obs, Observation) if self.obs is not None else
                Observation(reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool), truncated=np.zeros(n, bool),
                            final_index=np.zeros(0, np.int64), final_state=self.state[:0], final_frame=self.frame[:0]))
        cut = np.asarray(self._cut_episodes(), np.int64)
        cut_state, cut_frame = self.state[cut].copy(), self.frame[cut].copy()
        self._end_task()
        self.returns.clear()  # the live mean return and success rate are the current task's
        self.successes.clear()
        for env in self.envs:
            env.close()
        self.task = task
        self.envs = self._make_envs()
        self.obs = None
        self.first_observation()
        truncated = last.truncated.copy()
        truncated[cut] = True
        self.obs = encode(Observation(
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
            sent = info.get("sent_action", a)  # a robot records what it was actually sent (it may clip)
            for key, value in (("obs", self.state[i].copy()), ("frame", self.frame[i].copy()), ("action", sent),
                               ("reward", r), ("terminated", term), ("truncated", trunc),
                               ("task", self.task), ("time", now), ("step", self.batch_step), ("stopped", False)):
                buf[key].append(value)
            if self.targets:
                buf["target"].append(info["target"])
            if self.reports_success:
                buf["success"].append(info["success"])
                self.episode_success[i] |= info["success"]
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
        self.obs = encode(Observation(
            step=self.batch_step, state=self.state, frame=self.frame, reward=reward,
            terminated=terminated, truncated=truncated, final_index=np.asarray(final_index, np.int64),
            final_state=np.stack(final_state) if final_index else self.state[:0].copy(),
            final_frame=np.stack(final_frame) if final_index else self.frame[:0].copy()))
        return self.obs

    def episode_budget_spent(self) -> bool:
        return self.max_episodes is not None and self.episodes >= self.max_episodes

    def _finish_episode(self, i: int, complete: bool = True) -> None:
        """Count a finished episode and send it to the recorder; a run's last, cut-short
        episodes (``complete=False``) are recorded but not counted in the returns."""
        buf = self.buffers[i]
        budget_left = not self.episode_budget_spent()
        if complete and budget_left:
            self.returns.append(float(self.episode_return[i]))
            self.successes.append(bool(self.episode_success[i]))
            self.episodes += 1
        self.episode_return[i] = 0.0
        self.episode_success[i] = False
        if self.recorder is not None and budget_left:
            data = {k: np.asarray(v, dtype=self.dtypes[k]) for k, v in buf.items()}
            self.recorder.send(encode(Episode(env_index=i, task=self.task, data=data)))
        self.buffers[i] = collections.defaultdict(list)

    def _cut_episodes(self) -> list[int]:
        """Record every env's unfinished episode, its last row marked truncated; returns those envs."""
        cut = []
        for i, buf in enumerate(self.buffers):
            if buf["reward"]:
                buf["truncated"][-1] = buf["stopped"][-1] = True
                self._finish_episode(i, complete=False)
                cut.append(i)
        return cut

    def _end_task(self) -> None:
        """Keep the task's mean return of its last 20 episodes (None if none finished)."""
        self.task_returns.append(float(np.mean(self.returns)) if self.returns else None)
        if self.reports_success:
            self.task_success.append(float(np.mean(self.successes)) if self.successes else None)

    def _finish(self) -> dict[str, Any]:
        self._cut_episodes()
        if self.sequence is not None:
            self._end_task()
        if self.recorder is not None:
            self.recorder.drain()
        for env in self.envs:
            env.close()
        return self.progress()

    def release(self) -> None:
        """Disconnect the robots now, from the actor's own thread (the env thread may be stuck in a step
        of a robot that stopped answering): the driver's last call before it kills this actor. A
        robot's ``close`` never hangs and may be called again; other envs are left to the process."""
        if self.robots:
            for env in list(self.envs):
                env.close()

    def progress(self, recent_s: float | None = None) -> dict[str, Any]:
        """Counters for the live display and the summary (latency over the last ``recent_s`` seconds)."""
        return {"steps": self.steps, "episodes": self.episodes, "task": self.task, "transport": self.ring.transport_name,
                "task_returns": list(self.task_returns),
                "mean_return_last20": float(np.mean(self.returns)) if self.returns else float("nan"),
                **({"success_rate_last20": float(np.mean(self.successes)) if self.successes else float("nan"),
                    "task_success": list(self.task_success)} if self.reports_success else {}),
                "hop_policy_env": self.hop.summary(recent_s),
                **({"late_steps": sum(env.unwrapped.late_steps for env in list(self.envs))} if self.robots else {}),
                "channel_recorder": self.recorder.stats().to_dict() if self.recorder else None}
