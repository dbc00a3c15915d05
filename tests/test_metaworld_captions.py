"""Meta-World captions follow the simulator's state, and the shipped captioner reads them off the frames."""

import numpy as np
import pytest
import torch

from agent.perception.decode import CaptionDecoding
from agent.perception.live import CHECKPOINTS, resolve_captioner
from agent.perception.train import checkpoint_grammar, load_checkpoint
from envs.env_captions import env_grammar, env_ids
from envs.metaworld_captions import ARM_CAPTIONS, DONE, ArmCaptioner, ArmStream, ArmView
from envs.seeds import eval_seed

SHIPPED = CHECKPOINTS / "captioner-metaworld.pt"


def _phases(captions: list[str]) -> list[str]:
    """The arm's phases in order, each once per run of equal captions (done or not)."""
    out: list[str] = []
    for c in captions:
        phase = c.removeprefix("the arm ").removesuffix(DONE)
        if not out or out[-1] != phase:
            out.append(phase)
    return out


@pytest.fixture(scope="module")
def expert_pick_place() -> tuple[np.ndarray, list[str]]:
    """One scripted-expert pick-place episode on an evaluation seed: frames and captions."""
    stream = ArmStream("Meta-World/pick-place-v3", eval_seed(2, 0), 64, "expert")
    frames, captions, _ = stream.episode()
    stream.env.close()
    return frames, captions


def _view(hand, obj, opening=1.0, success=False) -> ArmView:
    return ArmView(np.array(hand, float), opening, np.array(obj, float), success)


def test_captions_follow_the_state():
    """Each phase from positions over the window; the first frame is still; done is latched until reset."""
    obj = [0.0, 0.7, 0.02]
    c = ArmCaptioner()
    assert c(_view([0.0, 0.5, 0.2], obj)) == "the arm idles"
    for i in range(1, 5):  # 1 cm a frame straight at the object
        caption = c(_view([0.0, 0.5 + 0.01 * i, 0.2], obj))
    assert caption == "the arm reaches toward the object"
    c.reset()
    c(_view([0.0, 0.7, 0.03], obj, opening=1.0))
    assert c(_view([0.0, 0.7, 0.03], obj, opening=0.8)) == "the arm closes on the object"
    for i in range(1, 5):  # held, rising 1 cm a frame
        caption = c(_view([0.0, 0.7, 0.03 + 0.01 * i], [0.0, 0.7, 0.02 + 0.01 * i], opening=0.5, success=i == 2))
    assert caption == "the arm lifts the object" + DONE
    for _ in range(5):  # held up, still: the success of two frames ago still counts
        caption = c(_view([0.0, 0.7, 0.07], [0.0, 0.7, 0.06], opening=0.5))
    assert caption == "the arm holds the object up" + DONE
    c.reset()
    assert c(_view([0.0, 0.7, 0.07], [0.0, 0.7, 0.06])) == "the arm idles"


def test_expert_pick_place_reaches_grasps_lifts_then_is_done(expert_pick_place):
    _, captions = expert_pick_place
    phases = _phases(captions)
    order = [phases.index(p) for p in ("reaches toward the object", "closes on the object", "lifts the object")]
    assert order == sorted(order), phases
    first_lift = next(i for i, c in enumerate(captions) if c.startswith("the arm lifts"))
    first_done = next(i for i, c in enumerate(captions) if c.endswith(DONE))
    assert first_lift < first_done and all(c.endswith(DONE) for c in captions[first_done:]), captions
    assert set(captions) <= set(ARM_CAPTIONS)


def test_random_actions_mostly_idle():
    stream = ArmStream("Meta-World/reach-v3", eval_seed(2, 1), 64, "random")
    _, captions = stream.next(100)
    stream.env.close()
    assert sum(c == "the arm idles" for c in captions) >= 80, _phases(captions)
    assert not any(c.endswith(DONE) for c in captions)


def test_sources_and_the_auto_captioner():
    """Sequences and comma lists name Meta-World tasks; auto picks the shipped Meta-World captioner for any."""
    assert env_ids("mw-easy,Meta-World/pick-place-v3")[-1] == "Meta-World/pick-place-v3"
    assert len(env_ids("mw-easy,Meta-World/pick-place-v3")) == 6 and env_grammar("cw10") == ARM_CAPTIONS
    with pytest.raises(ValueError, match="pick-place-v3"):
        env_grammar("Meta-World/pick-plase-v3")
    with pytest.raises(ValueError, match="different captions"):
        env_grammar("CartPole-v1,mw-easy")
    for source in ("Meta-World/pick-place-v3", "Meta-World/hammer-v3", "mw-easy", "cw10"):
        assert resolve_captioner("auto", source) == SHIPPED
    assert resolve_captioner("auto", "CartPole-v1") == CHECKPOINTS / "captioner-cartpole.pt"
    assert checkpoint_grammar(SHIPPED) == list(ARM_CAPTIONS)


def test_shipped_captioner_reads_a_held_out_expert_episode(expert_pick_place):
    frames, captions = expert_pick_place
    model = load_checkpoint(SHIPPED)
    decoding = CaptionDecoding(model, checkpoint_grammar(SHIPPED), "cpu")
    with torch.no_grad():
        feats, _ = model(torch.as_tensor(frames[None]), model.initial_state(1))
    said = decoding.greedy(feats[0])
    right = np.mean([s == c for s, c in zip(said, captions)])
    assert right >= 0.75, list(zip(captions, said))
