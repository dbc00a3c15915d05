"""Meta-World arms through `envs.make` and `thalamus record --expert` (a `thalamus run` of them is
checked in test_replay.py, on the run its replays play)."""

import json

import numpy as np
import pytest
from conftest import one_clear_line, run_here, run_main

import envs
from envs import metaworld
from memory import open_store, read_manifest


def _arm_and_table_rows(frame: np.ndarray) -> tuple[float, float]:
    """Mean row of the red arm's pixels and of the wooden table top's."""
    r, g, b = (frame[..., c].astype(int) for c in range(3))
    red = (r > 120) & (g < 50) & (b < 50)
    wood = (r > 70) & (r < 170) & (g > 40) & (g < 120) & (b < 90) & (r - b > 30) & ~red
    rows = np.indices(r.shape)[0]
    assert red.sum() > 50 and wood.sum() > 200, "the frame should show the arm and the table"
    return rows[red].mean(), rows[wood].mean()


def test_frames_are_upright_the_table_below_the_arm():
    env = envs.make("Meta-World/pick-place-v3", frame_size=64, seed=0)
    try:
        obs, info = env.reset()
    finally:
        env.close()
    assert obs["frame"].shape == (64, 64, 3) and obs["state"].shape == (39,) and info["success"] is False
    arm, table = _arm_and_table_rows(obs["frame"])
    assert table > arm + 5, (arm, table)  # MuJoCo's corner camera alone renders it the other way up


def test_the_expert_succeeds_and_the_episode_ends_there_unless_full_episodes_are_asked():
    act = metaworld.expert("reach-v3")
    lengths = {}
    for full in (False, True):
        env = envs.make("Meta-World/reach-v3", frame_size=16, seed=3, options=envs.EnvOptions(full_episodes=full))
        try:
            obs, _ = env.reset(seed=7)
            successes, steps, done = [], 0, False
            while not done:
                obs, _, terminated, truncated, info = env.step(act(obs["state"]))
                successes.append(info["success"])
                steps, done = steps + 1, terminated or truncated
        finally:
            env.close()
        assert any(successes)
        lengths[full] = (steps, terminated, successes.index(True) + 1)
    steps, terminated, first = lengths[False]
    assert terminated and steps == first  # ended at its first success
    steps, terminated, _ = lengths[True]
    assert not terminated and steps == metaworld.MAX_EPISODE_STEPS  # ran its full length, truncated


def test_a_reset_seed_decides_the_episode():
    env = envs.make("Meta-World/push-v3", frame_size=16, seed=5)
    try:
        a, b, again = (env.reset(seed=s)[0]["state"] for s in (11, 12, 11))
    finally:
        env.close()
    assert np.array_equal(a, again) and not np.array_equal(a, b)


def test_record_expert_writes_demonstrations_of_every_task(tmp_path):
    run_dir = tmp_path / "demos"
    proc = run_here("record", "--env", "Meta-World/reach-v3", "--expert", "--episodes", "3", "--frame-size", "32",
                   "--run-dir", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["episodes"] == 3 and report["per_task"]["reach-v3"]["success_rate"] == 1.0
    manifest = read_manifest(run_dir)
    assert manifest["source"] == "expert" and manifest["status"] == "completed"
    store = open_store(run_dir)
    assert store.n_episodes == 3 and store.n_steps == report["steps"]
    episodes = [store.get_episode(i) for i in range(3)]
    for ep in episodes:
        assert ep["success"][-1] and not ep["success"][:-1].any() and ep["terminated"][-1]
        assert np.abs(ep["action"]).max() <= 1.0
    assert not np.array_equal(episodes[0]["obs"][0], episodes[1]["obs"][0])  # each episode its own seed


@pytest.mark.parametrize("argv, expect", [
    (["run", "--env", "Meta-World/pick-place-v2"], "did you mean Meta-World/pick-place-v3"),
    (["run", "--env", "CartPole-v1", "--camera", "corner2"], "for Meta-World envs"),
    (["run", "--env", "Meta-World/reach-v3", "--camera", "corner9"], "is not a Meta-World camera"),
    (["record", "--env", "CartPole-v1", "--expert"], "has no scripted expert"),
    (["record", "--tasks", "split-digits", "--expert"], "has no scripted expert"),
    (["record", "--env", "Meta-World/reach-v3"], "--expert"),
])
def test_bad_robot_input_is_one_clear_line(argv, expect, tmp_path, capsys):
    one_clear_line(run_main(capsys, *argv, "--run-dir", str(tmp_path / "r")), expect)
    assert not (tmp_path / "r" / "store.zarr").exists()
