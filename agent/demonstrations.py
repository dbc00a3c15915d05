"""Recording a scripted expert into a run store: the demonstrations a policy is trained on by imitation.

    >>> tasks = DemoTasks.of_env("Meta-World/reach-v3")
    >>> report = record_expert(tasks, run_dir, episodes=2, frame_size=64, seed=0)

The store has the layout a `thalamus run` writes (`agent.recorder.store_specs`): every step's
state, frame, action, reward, ends, task, time, step and ``success`` (and its caption with a
captioner), one episode after another, task by task. Env seeds come from `envs.seeds.demo_seed`,
disjoint from training and evaluation seeds. Every episode is kept, failed ones too; the report
gives the success rate per task.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

import envs
from agent.recorder import store_specs
from envs import metaworld
from envs.options import EnvOptions
from envs.seeds import demo_seed
from envs.tasks import task_sequence
from memory import create_store


@dataclass(frozen=True)
class DemoTasks:
    """What to record: the Meta-World task of each task index (one, or a sequence's)."""

    label: str  # the env id or the sequence name
    env_ids: tuple[str, ...]  # a Meta-World id per task
    sequence: str | None = None

    @classmethod
    def of_env(cls, env_id: str) -> DemoTasks:
        """One env; ValueError (one line) when it has no scripted expert."""
        if not metaworld.is_metaworld(env_id):
            raise ValueError(f"{env_id} has no scripted expert; experts exist for Meta-World tasks "
                             "(--env Meta-World/TASK or --tasks cw10|mw-easy)")
        metaworld.check_id(env_id)
        return cls(env_id, (env_id,))

    @classmethod
    def of_sequence(cls, name: str) -> DemoTasks:
        """Every task of a sequence; ValueError (one line) for a sequence without experts."""
        seq = task_sequence(name)
        if not seq.reports_success:
            raise ValueError(f"--tasks {name} has no scripted expert; experts exist for Meta-World "
                             "sequences (cw10, mw-easy)")
        return cls(name, tuple(metaworld.PREFIX + t for t in seq.names), sequence=name)


@dataclass
class TaskRecord:
    """What was recorded of one task."""

    name: str
    episodes: int = 0
    successes: int = 0
    steps: int = 0

    @property
    def success_rate(self) -> float:
        return self.successes / self.episodes if self.episodes else float("nan")


Progress = Callable[[int, str], None]  # (episodes recorded so far, task name)


def _episode(env: gymnasium.Env, act: Callable[[np.ndarray], np.ndarray], seed: int, task: int, step0: int,
             t0: float) -> list[dict[str, Any]]:
    """The rows of one expert episode from a reset with ``seed``, in the store's columns."""
    obs, _ = env.reset(seed=seed)
    rows, step = [], step0
    while True:
        action = act(obs["state"])
        nxt, reward, terminated, truncated, info = env.step(action)
        rows.append({"obs": obs["state"], "frame": obs["frame"], "action": action, "reward": reward,
                     "terminated": terminated, "truncated": truncated, "task": task, "time": time.time() - t0,
                     "step": step, "stopped": False, "success": info["success"], "env": 0})
        step += 1
        if terminated or truncated:
            return rows
        obs = nxt


def record_expert(tasks: DemoTasks, run_dir: Path, episodes: int, frame_size: int, seed: int,
                  options: EnvOptions = EnvOptions(), captioner: Path | None = None,
                  progress: Progress | None = None) -> list[TaskRecord]:
    """Record ``episodes`` expert episodes of every task into a new store in ``run_dir``."""
    if captioner is not None:
        from agent.perception.live import LiveCaptioner
        from agent.perception.train import checkpoint_config

        caption_len = checkpoint_config(captioner).max_len
    else:
        caption_len = 0
    probe = envs.make(tasks.env_ids[0], frame_size=frame_size, options=options)
    spec = {"state_dim": int(probe.observation_space["state"].shape[0]),
            "frame_shape": tuple(probe.observation_space["frame"].shape), "discrete": False,
            "action_shape": tuple(probe.action_space.shape), "success": True}
    probe.close()
    specs = store_specs(spec, caption_len)
    dtypes = {k: np.dtype(v.dtype) for k, v in specs.items()}
    records = [TaskRecord(metaworld.check_id(env_id)) for env_id in tasks.env_ids]
    t0, step, done = time.time(), 0, 0
    with create_store(run_dir, specs) as writer:
        for task, (env_id, record) in enumerate(zip(tasks.env_ids, records)):
            act = metaworld.expert(env_id)
            seeds = [demo_seed(seed, task * episodes + k) for k in range(episodes)]
            env = envs.make(env_id, frame_size=frame_size, seed=seeds[0], options=options)  # one env, seeded resets
            try:
                for episode_seed in seeds:
                    rows = _episode(env, act, episode_seed, task, step, t0)
                    data = {key: np.asarray([r[key] for r in rows], dtype=dtypes[key]) for key in rows[0]}
                    if captioner is not None:
                        live = LiveCaptioner(captioner)  # a fresh stream per episode
                        data["caption"] = np.concatenate([live.tokens(f[None]) for f in data["frame"]])
                        data["caption_lag"] = np.zeros(len(rows), np.int16)  # captioned in step, no lag
                        data["caption_skipped"] = np.zeros(len(rows), bool)  # every frame read
                    writer.add_episode(data, task=task)
                    step += len(rows)
                    done += 1
                    record.episodes += 1
                    record.successes += bool(data["success"].any())
                    record.steps += len(rows)
                    if progress is not None:
                        progress(done, record.name)
            finally:
                env.close()
    return records
