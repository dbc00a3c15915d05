"""Environment captions come from simulator state, and agree with what the camera shows."""

import numpy as np
import pytest

import envs
from agent.perception.grammar import Vocab
from envs.env_captions import POLE_CART_CAPTIONS, env_caption, env_grammar


def _pole_side(frame: np.ndarray) -> float:
    """Horizontal offset of the pole's upper half from the cart, in pixels (> 0: right)."""
    gray = frame.astype(int).sum(-1)
    fg = np.abs(gray - np.median(gray)) > 60  # anything that is not background
    ys, xs = np.nonzero(fg)
    top, bottom = ys < np.percentile(ys, 30), ys > np.percentile(ys, 80)
    return xs[top].mean() - xs[bottom].mean()


@pytest.mark.parametrize("env_id, set_state", [
    ("CartPole-v1", lambda env, angle, vel: setattr(env.unwrapped, "state", np.array([0.0, vel, angle, 0.0]))),
    ("InvertedPendulum-v5", lambda env, angle, vel: env.unwrapped.set_state(np.array([0.0, angle]),
                                                                            np.array([vel, 0.0]))),
])
def test_caption_matches_what_the_camera_shows(env_id, set_state):
    env = envs.make(env_id, frame_size=96, seed=0)
    env.reset()
    sides = {}
    for angle, vel, want in ((0.3, 0.5, "the pole leans right and the cart moves right"),
                             (-0.3, -0.5, "the pole leans left and the cart moves left"),
                             (0.0, 0.0, "the pole stays upright and the cart stays still")):
        set_state(env, angle, vel)
        raw = env.unwrapped.state if env_id == "CartPole-v1" else env.unwrapped._get_obs()
        obs = env.observation(np.asarray(raw, np.float32))  # the camera wrapper renders the set state
        assert env_caption(env_id, obs["state"]) == want
        sides[angle] = _pole_side(obs["frame"])
    assert sides[0.3] > 1 and sides[-0.3] < -1 and abs(sides[0.0]) < abs(sides[0.3])
    env.close()


def test_grammar_is_complete_and_in_the_vocabulary():
    assert len(set(POLE_CART_CAPTIONS)) == 9 and env_grammar("CartPole-v1") == POLE_CART_CAPTIONS
    for caption in POLE_CART_CAPTIONS:
        Vocab().encode(caption)  # raises on a word the built-in vocabulary lacks
    with pytest.raises(ValueError, match="captioned environments: CartPole-v1"):
        env_caption("Reacher-v5", np.zeros(10))
