"""The robot bridge (envs/robot.py) over a real MuJoCo arm (envs/sim_arm.py): observations and sent
actions come from the robot, the control rate holds, late steps are counted, the robot is let go on
close, a robot that stops answering is one clear line, and so is every bad input.

The robot classes below are importable as ``robot:test_robot:CLASS`` (pytest puts tests/ on the path).
"""

from __future__ import annotations

import json
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

import envs
from envs import EnvNotFoundError, EnvOptions, RobotError
from envs.sim_arm import JOINTS, SimArm

ARM = "robot:envs.sim_arm:SimArm"
KEYS = [f"{j}.pos" for j in JOINTS]
LIMITS = {"action_low": [-3, -3, -3], "action_high": [3, 3, 0.5]}  # wider than the arm's joints, but the elbow


def make(env_id: str = ARM, config: dict[str, Any] | str | None = None, control_hz: float = 30.0,
         frame_size: int = 32, camera: str | None = None) -> envs.RobotEnv:
    text = json.dumps(config) if isinstance(config, dict) else config
    return envs.make(env_id, frame_size, seed=0, options=EnvOptions(robot_config=text, control_hz=control_hz,
                                                                    camera=camera))


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


# -- robots for the tests ------------------------------------------------------------------------
class RecordingArm(SimArm):
    """A SimArm that keeps the last observation it gave."""

    def get_observation(self) -> dict[str, Any]:
        self.last = super().get_observation()
        return self.last


class UnpluggedArm(SimArm):
    """An arm whose serial port is not there."""

    def connect(self, calibrate: bool = True) -> None:
        raise ConnectionError("could not open port /dev/ttyACM0")


class StuckArm(SimArm):
    """An arm whose disconnect never returns."""

    def disconnect(self) -> None:
        threading.Event().wait()


class HalfArm:
    """Has part of the interface only: no send_action, no is_connected."""

    observation_features = {"a.pos": float, "cam": (8, 8, 3)}
    action_features = {"a.pos": float}

    def connect(self, calibrate: bool = True) -> None: ...

    def get_observation(self) -> dict[str, Any]: ...

    def disconnect(self) -> None: ...


def pan_error(observation: dict[str, Any], sent: dict[str, float]) -> float:
    """A reward: how far the pan joint is from the goal just sent."""
    return -abs(observation["shoulder_pan.pos"] - sent["shoulder_pan.pos"])


# -- what the env gives ----------------------------------------------------------------------------
def test_frame_and_state_come_from_the_robots_observation():
    with make("robot:test_robot:RecordingArm", frame_size=40) as env:
        assert env.observation_space["state"].shape == (3,) and env.action_space.shape == (3,)
        obs, _ = env.reset()
        for _ in range(8):  # move each joint a different way, so that an order mix-up shows
            obs, *_ = env.step(np.array([0.8, -0.5, 0.3], np.float32))
        raw = env.robot.last
        assert obs["state"].dtype == np.float32
        np.testing.assert_array_equal(obs["state"], np.array([raw[k] for k in KEYS], np.float32))
        assert obs["state"][0] > 0.1 and obs["state"][1] < -0.1  # the arm moved toward the goals, in order
        assert obs["frame"].shape == (40, 40, 3) and obs["frame"].dtype == np.uint8
        np.testing.assert_array_equal(obs["frame"], cv2.resize(raw["front"], (40, 40), interpolation=cv2.INTER_AREA))
        assert obs["frame"].std() > 5  # a picture, not a blank


def test_stored_action_is_what_the_robot_sent(tmp_path):
    config = tmp_path / "arm.json"
    config.write_text(json.dumps({**LIMITS, "reward": "test_robot:pan_error"}))
    with make("robot:test_robot:RecordingArm", config=str(config)) as env:
        np.testing.assert_array_equal(env.action_space.high, [3, 3, 0.5])
        env.reset()
        _, reward, terminated, truncated, info = env.step(np.array([3.0, -3.0, 3.0], np.float32))
        # pan and lift clipped by the arm to its joint limits, the elbow by the env to action_high
        expected = [JOINTS["shoulder_pan"][1], JOINTS["shoulder_lift"][0], 0.5]
        np.testing.assert_allclose(info["sent_action"], expected, rtol=1e-6)
        assert info["sent_action"].dtype == np.float32 and info["late"] in (True, False)
        raw = env.robot.last  # the reward saw the observation and the goal sent
        assert reward == pytest.approx(-abs(raw["shoulder_pan.pos"] - expected[0])) and reward < 0
        assert not terminated and not truncated


def test_episode_is_truncated_after_episode_s():
    with make(config={"episode_s": 0.1}) as env:  # 3 steps at 30 Hz
        env.reset()
        ends = [env.step(env.action_space.sample())[3] for _ in range(3)]
        assert env.episode_steps == 3 and ends == [False, False, True]
        env.reset()
        assert not env.step(env.action_space.sample())[3]


# -- the control clock -----------------------------------------------------------------------------
@pytest.mark.realtime  # a clock within 10%: `make test` runs it unshared
def test_control_rate_holds_30_hz():
    with make() as env:
        env.reset()
        start = time.perf_counter()
        for _ in range(60):
            env.step(np.zeros(3, np.float32))
        rate = 60 / (time.perf_counter() - start)
    assert 27.0 <= rate <= 33.0, f"{rate:.1f} steps/s at --control-hz 30"


@pytest.mark.realtime  # a clock within 10%: `make test` runs it unshared
def test_a_robot_slower_than_the_period_makes_every_step_late():
    with make(config={"robot": {"camera_latency_s": 0.05}}) as env:  # 50 ms a frame at 30 Hz (33 ms)
        env.reset()
        late = [env.step(np.zeros(3, np.float32))[4]["late"] for _ in range(5)]
        # the clock starts once reset's read is done, so the first step has its whole period; each read
        # after that overruns the next tick
        assert late == [False] + [True] * 4 and env.late_steps == 4


@pytest.mark.realtime  # a clock within 10%: `make test` runs it unshared
def test_after_a_late_step_the_clock_restarts_instead_of_catching_up():
    with make(control_hz=5) as env:  # 200 ms ticks (the arm takes ~10 ms a step: room for a loaded machine)
        env.reset()
        late = []
        for i in range(6):
            if i == 2:
                time.sleep(0.7)  # a policy that stalls for 3.5 ticks, once
            late.append(env.step(np.zeros(3, np.float32))[4]["late"])
        # catching up would make the next 3 ticks late too (they are already past)
        assert late == [False, False, True, False, False, False] and env.late_steps == 1, late


# -- letting go of the robot -----------------------------------------------------------------------
def test_close_disconnects_once_and_only_if_connected(tmp_path):
    record = tmp_path / "disconnects"
    config = {"robot": {"disconnect_file": str(record)}}
    make(config=config).close()
    assert lines(record) == []  # never connected: nothing to let go
    with make(config=config) as env:
        env.reset()
        env.step(np.zeros(3, np.float32))
    assert lines(record) == ["disconnected"] and not env.robot.is_connected
    env.close()
    assert lines(record) == ["disconnected"]


def test_close_disconnects_on_an_exception_mid_episode(tmp_path):
    record = tmp_path / "disconnects"
    with pytest.raises(ZeroDivisionError):
        with make(config={"robot": {"disconnect_file": str(record)}}) as env:
            env.reset()
            env.step(np.zeros(3, np.float32))
            1 / 0
    assert lines(record) == ["disconnected"]


def test_a_robot_that_stops_answering_is_one_line_and_close_returns(tmp_path):
    record = tmp_path / "disconnects"
    env = make(config={"robot": {"stop_answering_after": 2, "disconnect_file": str(record)}, "timeout_s": 0.5})
    env.reset()
    env.step(np.zeros(3, np.float32))
    with pytest.raises(RobotError) as error:
        env.step(np.zeros(3, np.float32))
    message = str(error.value)
    assert "\n" not in message and ARM in message and "get_observation within 0.5 s" in message
    assert "plugged in" in message
    with pytest.raises(RobotError, match="unusable"):  # later steps fail at once, not after another timeout
        env.step(np.zeros(3, np.float32))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the disconnect itself worked: no warning
        env.close()
    assert lines(record) == ["disconnected"] and not env.robot.is_connected


def test_close_returns_when_the_disconnect_hangs():
    env = make("robot:test_robot:StuckArm", config={"timeout_s": 0.3})
    env.reset()
    with pytest.warns(RuntimeWarning, match="did not answer disconnect within 0.3 s"):
        env.close()
    env.close()  # and again: nothing left to do


def test_a_robot_that_fails_to_connect_is_one_line():
    env = make("robot:test_robot:UnpluggedArm")
    with pytest.raises(RobotError) as error:
        env.reset()
    message = str(error.value)
    assert "\n" not in message
    assert "robot:test_robot:UnpluggedArm failed in connect: ConnectionError: could not open port" in message
    assert "powered and plugged in" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        env.close()  # not connected: no disconnect to try


# -- bad input -------------------------------------------------------------------------------------
@pytest.mark.parametrize("env_id, config, camera, kind, expect", [
    pytest.param("robot:envs.sim_arm", None, None, EnvNotFoundError, "not of the form robot:MODULE:CLASS",
                 id="id-form"),
    pytest.param("robot:no_such_robots:Arm", None, None, EnvNotFoundError,
                 "cannot import module 'no_such_robots' of robot:no_such_robots:Arm: ModuleNotFoundError",
                 id="module"),
    pytest.param("robot:envs.sim_arm:SimArmm", None, None, EnvNotFoundError,
                 "module 'envs.sim_arm' has no 'SimArmm' (robot:envs.sim_arm:SimArmm); did you mean SimArm",
                 id="class"),
    pytest.param("robot:test_robot:HalfArm", None, None, ValueError,
                 "test_robot.HalfArm lacks send_action, is_connected", id="interface"),
    pytest.param(ARM, '{"robot": ', None, ValueError, "--robot-config is not valid JSON", id="json"),
    pytest.param(ARM, "no/such/arm.json", None, ValueError, "'no/such/arm.json' is neither a JSON object nor a file",
                 id="no-file"),
    pytest.param(ARM, {"action_low": [-1, -1]}, None, ValueError,
                 "action_low has 2 numbers but robot robot:envs.sim_arm:SimArm has 3 action features",
                 id="limits-length"),
    pytest.param(ARM, {"action_high": [1, 1, "x"]}, None, ValueError, "'action_high' must be a list of numbers",
                 id="limits-type"),
    pytest.param(ARM, {"episode_sec": 5}, None, ValueError, "unknown key 'episode_sec' (did you mean 'episode_s'?)",
                 id="config-key"),
    pytest.param(ARM, {"robot": {"latency": 1}}, None, ValueError, "unexpected keyword argument 'latency'",
                 id="robot-args"),
    pytest.param(ARM, {"reward": "test_robot:no_such_reward"}, None, EnvNotFoundError,
                 "module 'test_robot' has no 'no_such_reward' (the config's reward)", id="reward"),
    pytest.param(ARM, None, "wrist", ValueError, "--camera 'wrist' is not a camera of robot:envs.sim_arm:SimArm; "
                 "its cameras are front", id="camera"),
])
def test_bad_input_is_one_clear_line(env_id, config, camera, kind, expect):
    with pytest.raises(kind) as error:
        make(env_id, config=config, camera=camera)
    assert "\n" not in str(error.value) and expect in str(error.value)


def test_env_spec_checks_robot_ids_without_connecting():
    assert envs.env_spec(ARM).id == ARM
    with pytest.raises(ValueError, match="lacks send_action, is_connected"):
        envs.env_spec("robot:test_robot:HalfArm")
    with pytest.raises(ValueError, match="--robot-config is for robot:MODULE:CLASS envs"):
        envs.make("CartPole-v1", options=EnvOptions(robot_config="{}"))
