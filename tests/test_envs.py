"""Tests of envs/: observations with camera frames, seeding, frame fidelity, and errors."""

from __future__ import annotations

import gc
import importlib.util
import warnings

import cv2
import gymnasium  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from gymnasium.utils.env_checker import check_env  # noqa: E402

from envs import (  # noqa: E402
    SUPPORTED_ENVS,
    CameraObservation,
    EnvNotFoundError,
    EnvUnavailableError,
    make,
)

PAINTED = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCar-v0", "MountainCarContinuous-v0")
needs_pygame = pytest.mark.skipif(
    importlib.util.find_spec("pygame") is None, reason="pygame not installed"
)


@pytest.fixture(autouse=True)
def in_tmp_dir(tmp_path, monkeypatch) -> None:
    """Plain gymnasium MuJoCo envs write ./MUJOCO_LOG.TXT; keep it out of the repository."""
    monkeypatch.chdir(tmp_path)


def rollout(env: gymnasium.Env, steps: int) -> list[dict[str, np.ndarray]]:
    """Observations of a reset and `steps` random steps (and of resets when an episode ends)."""
    seen = [env.reset()[0]]
    for _ in range(steps):
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        seen.append(obs)
        if terminated or truncated:
            seen.append(env.reset()[0])
    return seen


@pytest.mark.parametrize("frame_size", [64, 48])
@pytest.mark.parametrize("env_id", SUPPORTED_ENVS)
def test_observations_have_state_and_frame(env_id: str, frame_size: int) -> None:
    env = make(env_id, frame_size=frame_size, seed=0)
    assert isinstance(env, CameraObservation)
    state_shape = gymnasium.spaces.flatdim(env.env.observation_space)
    for obs in rollout(env, steps=5):
        assert env.observation_space.contains(obs)
        assert obs["state"].dtype == np.float32 and obs["state"].shape == (state_shape,)
        assert obs["frame"].dtype == np.uint8 and obs["frame"].shape == (frame_size, frame_size, 3)
        assert obs["frame"].flags.c_contiguous
        assert len(np.unique(obs["frame"].reshape(-1, 3), axis=0)) > 2, "frame is (nearly) constant"
    assert env.action_space == gymnasium.make(env_id).action_space
    env.close()


@pytest.mark.parametrize("env_id", SUPPORTED_ENVS)
def test_gymnasium_env_checker_passes(env_id: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # check_env warns that it is given a wrapped env
        # the render check remakes the env in every render mode ("human" needs a display); frames
        # are checked above, and the close check remakes the env from its spec, wrappers included
        check_env(make(env_id, frame_size=32), skip_render_check=True)


@pytest.mark.parametrize("env_id", SUPPORTED_ENVS)
def test_same_seed_same_run_and_different_seed_different_run(env_id: str) -> None:
    a, b, c = (rollout(make(env_id, frame_size=32, seed=s), steps=8) for s in (7, 7, 8))
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x["state"], y["state"])
        np.testing.assert_array_equal(x["frame"], y["frame"])
    assert any(not np.array_equal(x["state"], z["state"]) for x, z in zip(a, c, strict=True))
    assert any(not np.array_equal(x["frame"], z["frame"]) for x, z in zip(a, c, strict=True))


def test_seed_applies_to_the_first_reset_only() -> None:
    env = make("CartPole-v1", seed=3)
    first, _ = env.reset()
    second, _ = env.reset()
    reference, _ = make("CartPole-v1").reset(seed=3)
    np.testing.assert_array_equal(first["state"], reference["state"])
    assert not np.array_equal(first["state"], second["state"])


def frame_of(env: CameraObservation) -> np.ndarray:
    """The camera frame of the env's current simulator state."""
    return env.observation(env.unwrapped.observation_space.sample())["frame"]


def test_cartpole_frame_follows_the_pole() -> None:
    env = make("CartPole-v1", frame_size=64)
    env.reset(seed=0)
    frames = {}
    for theta in (-0.2, 0.0, 0.2):
        env.unwrapped.state = np.array([0.0, 0.0, theta, 0.0])
        frames[theta] = frame_of(env)
    assert not np.array_equal(frames[-0.2], frames[0.0])
    assert not np.array_equal(frames[0.0], frames[0.2])
    # a pole leaning right (positive angle) has its brown pixels right of the cart's centre column
    for theta, side in ((0.2, 1), (-0.2, -1)):
        frame = frames[theta].astype(int)
        pole = np.argwhere(frame[..., 0] - frame[..., 2] > 40)  # brown: red well above blue
        assert len(pole) >= 5 and np.sign(pole[:, 1].mean() - 31.5) == side
    env.unwrapped.state = np.array([1.0, 0.0, 0.0, 0.0])
    assert not np.array_equal(frame_of(env), frames[0.0]), "moving the cart must move the picture"


def test_reacher_frame_follows_the_arm() -> None:
    env = make("Reacher-v5", frame_size=64)
    env.reset(seed=0)
    base = env.unwrapped
    qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
    frames = []
    for shoulder in (0.0, 1.5, 0.0):
        qpos[0] = shoulder
        base.set_state(qpos, qvel)
        frames.append(frame_of(env))
    np.testing.assert_array_equal(frames[0], frames[2])
    changed = np.abs(frames[0].astype(int) - frames[1]).sum(-1) > 30
    assert changed.sum() >= 10, f"turning the shoulder changed only {changed.sum()} pixels"


# A second, clearly different state for each painted env: added to the state after a reset.
STATE_CHANGE = {
    "CartPole-v1": (0.3, 0.0, 0.15, 0.0),  # x, x_dot, theta, theta_dot
    "Acrobot-v1": (1.0, -0.5, 0.0, 0.0),  # theta1, theta2, their velocities
    "Pendulum-v1": (1.0, 0.0),  # theta, theta_dot
    "MountainCar-v0": (0.5, 0.0),  # position, velocity
    "MountainCarContinuous-v0": (0.5, 0.0),
}


@needs_pygame
@pytest.mark.parametrize("env_id", PAINTED)
def test_painted_frames_match_gymnasiums_own_picture(env_id: str) -> None:
    """The OpenCV drawing matches gymnasium's pygame render shrunk to the frame size, and matches
    it better than the render of the other state does (so positions and orientations agree)."""
    env = make(env_id, frame_size=64, seed=0)
    env.reset()
    first = np.array(env.unwrapped.state, dtype=np.float64)
    if env_id == "Pendulum-v1":
        env.unwrapped.last_u = -1.5  # the torque arrow is drawn too
    painted, theirs = [], []
    for state in (first, first + STATE_CHANGE[env_id]):
        env.unwrapped.state = state
        painted.append(frame_of(env).astype(np.float64))
        picture = env.render()
        shrunk = cv2.resize(picture, (64, 64), interpolation=cv2.INTER_AREA)
        theirs.append(shrunk.astype(np.float64))
    for i in range(2):
        own = np.abs(painted[i] - theirs[i]).mean()
        other = np.abs(painted[i] - theirs[1 - i]).mean()
        assert own < 3.0, f"painted frame differs from gymnasium's by {own:.1f} per pixel"
        assert own < 0.7 * other, f"as close to another state's picture ({own:.2f}, {other:.2f})"


def test_mujoco_envs_in_one_process_render_their_own_scene() -> None:
    """Gymnasium only switches GL contexts within one env; each env must render with its own."""
    alone = rollout(make("Reacher-v5", frame_size=32, seed=1), steps=4)
    reacher = make("Reacher-v5", frame_size=32, seed=1)
    other = make("InvertedPendulum-v5", frame_size=32, seed=1)
    together = [reacher.reset()[0]]
    other.reset()  # its context is now the newest
    for _ in range(4):
        other.step(other.action_space.sample())
        together.append(reacher.step(reacher.action_space.sample())[0])
    for x, y in zip(alone, together, strict=True):
        np.testing.assert_array_equal(x["frame"], y["frame"])


@pytest.mark.parametrize("env_id", ["Hopper-v5", "HalfCheetah-v5"])
def test_faster_rendering_leaves_physics_unchanged(env_id: str) -> None:
    plain = gymnasium.make(env_id)
    ours = make(env_id, frame_size=32)
    obs_plain, _ = plain.reset(seed=5)
    obs_ours, _ = ours.reset(seed=5)
    actions = np.random.default_rng(0).uniform(-1, 1, (20, *plain.action_space.shape))
    for action in actions:
        np.testing.assert_array_equal(obs_plain.astype(np.float32), obs_ours["state"])
        obs_plain = plain.step(action.astype(np.float32))[0]
        obs_ours = ours.step(action.astype(np.float32))[0]


def test_mujoco_model_warning_is_not_printed(tmp_path, capfd) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the known-harmless settotalmass warning is not re-issued
        make("HalfCheetah-v5", frame_size=32)
    assert "settotalmass" not in capfd.readouterr().out
    assert not (tmp_path / "MUJOCO_LOG.TXT").exists()


@needs_pygame
def test_other_registered_envs_use_their_renderer() -> None:
    env = make("FrozenLake-v1", frame_size=40, seed=0)
    frames = [obs["frame"] for obs in rollout(env, steps=6)]
    assert env.observation_space["state"].shape == (16,)  # Discrete(16) flattens to one-hot
    assert frames[0].shape == (40, 40, 3) and len(np.unique(frames[0])) > 2
    assert any(not np.array_equal(frames[0], f) for f in frames[1:]), "the agent's moves must show"


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [("CartPol-v1", "CartPole-v1"), ("CartPole-v9", "CartPole-v1"), ("reacher-v5", "Reacher-v5")],
)
def test_unknown_id_names_close_matches(typo: str, suggestion: str) -> None:
    with pytest.raises(EnvNotFoundError) as caught:
        make(typo)
    message = str(caught.value)
    assert isinstance(caught.value, ValueError)
    assert f"unknown environment {typo!r}" in message and suggestion in message
    assert "\n" not in message


def test_unknown_id_without_close_matches() -> None:
    with pytest.raises(EnvNotFoundError, match="no registered id is close"):
        make("zzzzzzzzzz")


@pytest.mark.skipif(importlib.util.find_spec("Box2D") is not None, reason="box2d is installed")
def test_missing_extra_is_one_clear_line() -> None:
    with pytest.raises(EnvUnavailableError) as caught:
        make("LunarLander-v3")
    message = str(caught.value)
    assert message.startswith("cannot make LunarLander-v3:") and "box2d" in message.lower()
    assert "\n" not in message


# gymnasium's OffScreenViewer.__del__ raises when its own __init__ failed: noise from gymnasium
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_renderer_that_cannot_start_is_one_clear_line(monkeypatch) -> None:
    env = make("Reacher-v5", frame_size=32)
    monkeypatch.setenv("MUJOCO_GL", "no-such-backend")
    with pytest.raises(EnvUnavailableError) as caught:
        env.reset(seed=0)
    message = str(caught.value)
    assert message.startswith("cannot render Reacher-v5:")
    assert "MUJOCO_GL=no-such-backend" in message
    assert "\n" not in message
    del caught, env
    gc.collect()  # the half-built viewer's __del__ complains now, inside the filter above


def test_camera_needs_rgb_array_when_it_cannot_paint() -> None:
    with pytest.raises(ValueError, match="render_mode='rgb_array'"):
        CameraObservation(gymnasium.make("Reacher-v5"))


def test_frame_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="frame_size"):
        make("CartPole-v1", frame_size=0)
