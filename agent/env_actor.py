"""EnvActor: steps a batch of environments and sends every finished episode to the recorder."""

from __future__ import annotations

import collections
import time
from typing import Any

import numpy as np

import envs
from agent.channels import LatencyMeter
from agent.messages import Action, Episode, Observation, decode, encode
from agent.outbox import Outbox
from memory import ArraySpec


def store_specs(spec: dict[str, Any], caption_len: int = 0) -> dict[str, ArraySpec]:
    """The per-step arrays of the run store for an env of this ``spec`` (see :meth:`EnvActor.spec`);
    with ``caption_len`` > 0, also each step's caption as int16 token ids (``<pad>``-filled)."""
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
    return specs


class EnvActor:
    """``num_envs`` copies of one env, stepped together; autoresets finished ones.

    Each store row is ``(obs, frame, action, reward, terminated, truncated, task, time[, caption])``:
    the observation an action was taken on, the action, what followed it, and perception's caption
    of the frame (when ``caption_len`` > 0, each action message carries it).
    """

    def __init__(self, env_id: str, num_envs: int, frame_size: int, seed: int,
                 task: int = 0, max_episodes: int | None = None, caption_len: int = 0) -> None:
        self.envs = [envs.make(env_id, frame_size=frame_size, seed=seed + i) for i in range(num_envs)]
        self.task, self.max_episodes, self.caption_len = task, max_episodes, caption_len
        self.discrete = hasattr(self.envs[0].action_space, "n")
        self.dtypes = {k: np.dtype(v.dtype) for k, v in store_specs(self.spec(), caption_len).items()}
        self.recorder: Outbox | None = None
        self.hop = LatencyMeter()
        self.t0 = time.time()
        self.state = self.frame = None
        self.buffers: list[dict[str, list]] = [collections.defaultdict(list) for _ in self.envs]
        self.episode_return = np.zeros(num_envs)
        self.returns: collections.deque[float] = collections.deque(maxlen=20)
        self.steps = self.episodes = self.batch_step = 0

    def attach_recorder(self, recorder: Any) -> None:
        """Send every finished episode to ``recorder.add`` (blocking when 16 are in flight)."""
        self.recorder = Outbox("env→recorder", recorder, "add", window=16)

    def spec(self) -> dict[str, Any]:
        """Shapes of what this env produces and accepts."""
        env = self.envs[0]
        space = env.action_space
        out = {"state_dim": int(env.observation_space["state"].shape[0]),
               "frame_shape": tuple(env.observation_space["frame"].shape),
               "discrete": self.discrete}
        if self.discrete:
            out.update(action_dim=int(space.n), action_shape=())
        else:
            out.update(action_dim=int(np.prod(space.shape)), action_shape=tuple(space.shape),
                       action_low=space.low.astype(np.float32), action_high=space.high.astype(np.float32))
        return out

    def reset(self) -> bytes:
        """Reset every env (seeded at construction) and return the first observation batch."""
        obs = [env.reset()[0] for env in self.envs]
        self.state = np.stack([o["state"] for o in obs])
        self.frame = np.stack([o["frame"] for o in obs])
        n = len(self.envs)
        return encode(Observation(step=0, state=self.state, frame=self.frame,
                                  reward=np.zeros(n, np.float32), terminated=np.zeros(n, bool),
                                  truncated=np.zeros(n, bool)))

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
            o, r, term, trunc, _ = env.step(int(a) if self.discrete else a)
            reward[i], terminated[i], truncated[i] = r, term, trunc
            buf = self.buffers[i]
            for key, value in (("obs", self.state[i].copy()), ("frame", self.frame[i].copy()), ("action", a),
                               ("reward", r), ("terminated", term), ("truncated", trunc),
                               ("task", self.task), ("time", now)):
                buf[key].append(value)
            if self.caption_len:
                buf["caption"].append(msg.caption[i])
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
        empty = np.zeros((0, *self.state.shape[1:]), self.state.dtype), self.frame[:0]
        return encode(Observation(
            step=self.batch_step, state=self.state, frame=self.frame, reward=reward,
            terminated=terminated, truncated=truncated, final_index=np.asarray(final_index, np.int64),
            final_state=np.stack(final_state) if final_index else empty[0],
            final_frame=np.stack(final_frame) if final_index else empty[1]))

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

    def finish(self) -> dict[str, Any]:
        """End the run: record unfinished episodes (last row marked truncated), drain sends."""
        for i, buf in enumerate(self.buffers):
            if buf["reward"]:
                buf["truncated"][-1] = True
                self._finish_episode(i, complete=False)
        if self.recorder is not None:
            self.recorder.drain()
        for env in self.envs:
            env.close()
        return self.progress()

    def progress(self) -> dict[str, Any]:
        """Counters for the live display and the summary."""
        return {"steps": self.steps, "episodes": self.episodes,
                "mean_return_last20": float(np.mean(self.returns)) if self.returns else float("nan"),
                "hop_policy_env": self.hop.summary(),
                "channel_recorder": self.recorder.stats().to_dict() if self.recorder else None}
