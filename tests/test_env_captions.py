"""Environment captions come from simulator state, and agree with what the camera shows."""

import numpy as np
import pytest

import envs
from agent.perception.grammar import Vocab
from envs.env_captions import POLE_CART_CAPTIONS, TRACK_REACH, EnvCaptioner, PoleCartStream, env_grammar, frame_dt


def _pole_side(frame: np.ndarray) -> float:
    """Horizontal offset of the pole's upper half from the cart, in pixels (> 0: right)."""
    gray = frame.astype(int).sum(-1)
    fg = np.abs(gray - np.median(gray)) > 60  # anything that is not background
    ys, xs = np.nonzero(fg)
    top, bottom = ys < np.percentile(ys, 30), ys > np.percentile(ys, 80)
    return xs[top].mean() - xs[bottom].mean()


def _centre_x(frame: np.ndarray) -> float:
    gray = frame.astype(int).sum(-1)
    ys, xs = np.nonzero(np.abs(gray - np.median(gray)) > 60)
    return float(xs.mean())


def _cartpole(env, x, angle):
    env.unwrapped.state = np.array([x, 0.0, angle, 0.0])
    return env.observation(np.asarray(env.unwrapped.state, np.float32))


def _pendulum(env, x, angle):
    env.unwrapped.set_state(np.array([x, angle]), np.zeros(2))
    return env.observation(np.asarray(env.unwrapped._get_obs(), np.float32))


@pytest.mark.parametrize("env_id, show", [("CartPole-v1", _cartpole), ("InvertedPendulum-v5", _pendulum)])
def test_caption_matches_what_the_camera_shows(env_id, show):
    """The camera wrapper renders each set state; the caption of a run of frames says what they show."""
    env = envs.make(env_id, frame_size=96, seed=0)
    env.reset()
    dt = frame_dt(env)
    for angle, speed, want in ((0.3, 0.5, "the pole leans right and the cart moves right"),
                               (-0.3, -0.5, "the pole leans left and the cart moves left"),
                               (0.0, 0.05, "the pole stays upright and the cart stays still")):
        captioner = EnvCaptioner(env_id, dt)
        frames = []
        for i in range(6):
            obs = show(env, i * speed * dt, angle)
            frames.append(obs["frame"])
            caption = captioner(obs["state"])
        assert caption == want
        side, moved = _pole_side(frames[-1]), _centre_x(frames[-1]) - _centre_x(frames[0])
        assert (side > 1 if angle > 0 else side < -1 if angle < 0 else abs(side) < 1), side
        if abs(speed) > 0.2:
            assert np.sign(moved) == np.sign(speed), moved
    env.close()


def test_cart_motion_is_what_the_frames_show_not_the_latest_push():
    """The first frame of an episode is still; a velocity the frames have not shown yet is not motion."""
    captioner = EnvCaptioner("CartPole-v1", 0.02)
    assert captioner(np.array([0.0, 3.0, 0.0, 0.0])).endswith("stays still")
    assert captioner(np.array([0.0, 3.0, 0.0, 0.0])).endswith("stays still")
    assert captioner(np.array([0.06, 3.0, 0.0, 0.0])).endswith("moves right")
    captioner.reset()
    assert captioner(np.array([0.5, -3.0, 0.0, 0.0])).endswith("stays still")


def test_grammar_is_complete_and_in_the_vocabulary():
    assert len(set(POLE_CART_CAPTIONS)) == 9 and env_grammar("CartPole-v1") == POLE_CART_CAPTIONS
    for caption in POLE_CART_CAPTIONS:
        Vocab().encode(caption)  # raises on a word the built-in vocabulary lacks
    with pytest.raises(ValueError, match="captioned environments: CartPole-v1"):
        EnvCaptioner("Reacher-v5", 0.05)


@pytest.mark.parametrize("env_id", ["CartPole-v1", "InvertedPendulum-v5"])
def test_steered_play_balances_the_pole_across_the_track_and_random_play_does_not(env_id):
    """Training streams must show carts near the ends of the track, where a learned policy often
    balances: the steering keeps episodes long and takes the cart past half its reach;
    random actions end episodes quickly near the centre."""
    def play(kind: str) -> tuple[np.ndarray, int]:
        stream = PoleCartStream(env_id, seed=3, frame_size=16, play=kind)
        xs, episodes = [], 0
        for _ in range(1200):
            stream.next(1)
            xs.append(float(stream.obs["state"][0]))
            episodes += not stream.captioner.positions  # reset: the episode just ended
        return np.array(xs), episodes

    reach = TRACK_REACH[env_id]
    steered, steered_episodes = play("expert")
    random_xs, random_episodes = play("random")
    assert np.abs(steered).max() > reach / 2, (steered.min(), steered.max())
    assert np.abs(random_xs).max() < reach / 2
    assert steered_episodes * 5 < random_episodes, (steered_episodes, random_episodes)
    with pytest.raises(ValueError, match="play 'greedy': choose one of mixed, expert, random"):
        PoleCartStream(env_id, seed=3, play="greedy")
