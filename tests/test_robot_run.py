"""`thalamus run --env robot:MODULE:CLASS` on the simulated arm (envs/sim_arm.py): the rate it is driven
at, what the store records, and the robot disconnected on every way out."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import one_clear_line, run_main

from envs.sim_arm import JOINTS
from memory import open_store, read_manifest

ARM = "robot:envs.sim_arm:SimArm"


def _config(tmp_path: Path, **extra: object) -> str:
    robot = {"disconnect_file": str(tmp_path / "disconnected"), **extra.pop("robot", {})}
    return json.dumps({"robot": robot, "episode_s": 0.5, **extra})


def _start(ray_address: str, run_dir: Path, config: str, steps: int = 1_000_000) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "launch.cli", "run", "--env", ARM, "--robot-config", config,
                             "--steps", str(steps), "--num-envs", "1", "--captioner", "off", "--run-dir", str(run_dir),
                             "--address", ray_address],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()},
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _wait_for_episodes(run_dir: Path, n: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not ((run_dir / "store.zarr" / "episodes").is_dir() and open_store(run_dir).n_episodes >= n):
        assert proc.poll() is None, proc.communicate()[1][-2000:]
        assert time.monotonic() < deadline, f"fewer than {n} episodes within {timeout:.0f} s"
        time.sleep(0.3)


def _run_until_stopped(sig: signal.Signals, ray_address: str, tmp_path: Path) -> dict[str, np.ndarray]:
    """Drive the arm for three episodes, stop the run with `sig`, and return the stored time and action rows."""
    run_dir = tmp_path / "arm"
    wide = {"action_low": [-3.0] * 3, "action_high": [3.0] * 3}  # wider than the joints: the arm clips
    proc = _start(ray_address, run_dir, _config(tmp_path, **wide))
    try:
        _wait_for_episodes(run_dir, 3, proc)  # 15 steps each
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err[-2000:]  # stopped as Ctrl-C stops a run: what was seen is committed
    assert (tmp_path / "disconnected").exists()
    assert read_manifest(run_dir)["status"] == "interrupted"
    store = open_store(run_dir)
    return {k: np.concatenate([store.get_episode(i)[k] for i in range(store.n_episodes)]) for k in ("time", "action")}


@pytest.mark.realtime  # a control rate within 10%: `make test` runs it unshared
def test_the_arm_runs_at_its_rate_records_what_it_was_sent_and_is_disconnected_on_ctrl_c(ray_address, tmp_path):
    rows = _run_until_stopped(signal.SIGINT, ray_address, tmp_path)
    period = np.median(np.diff(rows["time"]))
    assert abs(period - 1 / 30) < 0.1 / 30, period  # driven at 30 Hz, held within 10%
    limits = np.array([hi for _, hi in JOINTS.values()])
    assert (np.abs(rows["action"]) <= limits + 1e-6).all()  # what was sent: clipped to the joints
    assert (np.isclose(np.abs(rows["action"]), limits)).any()  # ... and the policy did ask for more


def test_sigterm_commits_the_arms_episodes_and_disconnects_it(ray_address, tmp_path):
    rows = _run_until_stopped(signal.SIGTERM, ray_address, tmp_path)
    assert len(rows["time"]) >= 45 and (np.diff(rows["time"]) > 0).all()  # three whole episodes, in order


def test_a_robot_that_stops_answering_is_one_clear_line_its_episodes_kept_and_it_is_let_go(ray_address, tmp_path):
    run_dir = tmp_path / "dead"
    proc = _start(ray_address, run_dir, _config(tmp_path, robot={"stop_answering_after": 50}))
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 1 and "Traceback" not in err, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert "stopped answering" in last or "did not answer" in last, last
    assert f"thalamus run --resume {run_dir}" in last
    store = open_store(run_dir)
    assert store.n_episodes >= 2  # the episodes before it went quiet (15 steps each) are committed
    assert read_manifest(run_dir)["status"] == "failed"
    assert (tmp_path / "disconnected").exists()  # the failed env actor still let the robot go


@pytest.mark.parametrize("argv, expect", [
    (["--env", "robot:envs.sim_arm:NoSuchArm"], "NoSuchArm"),
    (["--env", "robot:envs.sim_arm"], "robot:MODULE:CLASS"),
    (["--env", "robot:json:JSONDecoder"], "lacks"),
    (["--env", ARM, "--robot-config", "{not json"], "not valid JSON"),
    (["--env", ARM, "--num-envs", "4"], "drives one robot"),
])
def test_bad_robot_input_is_one_clear_line(argv, expect, tmp_path, capsys):
    one_clear_line(run_main(capsys, "run", *argv, "--run-dir", str(tmp_path / "r")), expect)
    assert not (tmp_path / "r").exists()
