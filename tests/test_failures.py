"""Actors that die mid-run are restarted and the run goes on; no committed step is lost."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
from conftest import run_actor_pid

from agent.checkpoints import load_tensors
from agent.policy.ppo import PPOConfig
from memory import open_store


STEPS = 6000  # ~9 s on an idle 2-core machine: the kills land mid-run however fast it steps


@contextmanager
def _killed_at_exit(proc: subprocess.Popen) -> Iterator[None]:
    """A run that a failed assertion leaves going is killed, not left to the next test."""
    try:
        yield
    finally:
        if proc.poll() is None:
            proc.kill()


def test_killed_perception_and_policy_actors_restart_and_the_run_keeps_every_step(ray_address, tmp_path):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--address", ray_address, "--steps", str(STEPS),
                             "--num-envs", "4", "--captioner", "off", "--checkpoint-every", "1",
                             "--run-dir", str(run_dir), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    latest = run_dir / "checkpoints" / "latest.pt"

    def checkpointed() -> tuple[int, int]:
        """The newest checkpoint's policy updates and the steps it was taken at."""
        if not latest.exists():
            return 0, 0
        state = load_tensors(latest)
        return state["policy"]["updates"], state["steps"]

    def wait_for_updates(n: int) -> tuple[int, int]:
        """The newest checkpoint once it holds ``n`` policy updates (the run is stepping and learning)."""
        deadline = time.time() + 120
        while checkpointed()[0] < n and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        return checkpointed()

    with _killed_at_exit(proc):
        for name, updates in (("PerceptionActor", 1), ("PolicyActor", 12)):  # the policy late enough that
            pid = run_actor_pid(proc.pid, name)                             # learning anew would show
            updates_at_kill, steps_at_kill = wait_for_updates(updates)
            assert proc.poll() is None, f"the run ended before its {name} was killed: make STEPS larger"
            os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out)  # stdout is the summary alone, though Ray reported the deaths meanwhile
    assert summary["restarts"] >= 2, summary["restarts"]
    # the restarted policy went on from the newest checkpoint, not from scratch: its update count is
    # the checkpoint's plus one a rollout after it (from scratch it would be short by the checkpoint's)
    assert updates_at_kill >= 12
    rollouts_after = (STEPS - steps_at_kill) / (PPOConfig.for_actions(True).num_steps * 4)
    updates = summary["policy"]["updates"]
    assert updates >= rollouts_after + updates_at_kill / 2, (updates, updates_at_kill, rollouts_after)
    store = open_store(run_dir)
    assert store.n_steps == summary["steps"] == STEPS  # the whole budget was stepped and committed, none twice
    ends = store.episode_ends
    assert np.all(np.diff(ends) > 0)
    for i in range(store.n_episodes):
        ep = store.get_episode(i)
        done = ep["terminated"] | ep["truncated"]
        assert done[-1] and not done[:-1].any()  # each episode whole: one end, at its last step


def test_a_killed_captioner_restarts_and_later_frames_reach_it_by_actor_calls(ray_address, tmp_path):
    """Its frames came through a named pipe; after the kill perception's write finds the pipe closed, and
    the frames after it go to the restarted captioner as calls: the run ends, and its last steps have captions."""
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--address", ray_address, "--steps", str(STEPS),
                             "--num-envs", "4", "--checkpoint-every", "1", "--run-dir", str(run_dir), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    with _killed_at_exit(proc):
        pid = run_actor_pid(proc.pid, "CaptionActor")
        deadline = time.time() + 120
        while not (run_dir / "checkpoints" / "latest.pt").exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
        assert proc.poll() is None, "the run ended before its captioner was killed: make STEPS larger"
        os.kill(pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    summary = json.loads(out)
    assert summary["restarts"] >= 1, summary["restarts"]
    channel = next(c for c in summary["channels"] if c["name"] == "perception→captioner")
    assert channel["lost"] >= 1  # the write that found the pipe closed
    store = open_store(run_dir)
    assert store.n_steps == STEPS
    last = store.get_episode(store.n_episodes - 1)
    assert (last["caption"] != 0).any(axis=1).all()  # every step of the last episode has a caption
