"""The captioner: streaming steps equal one sequence pass, and decoding never leaves the grammar."""

import numpy as np
import torch

from agent.perception.captioner import Captioner, CaptionerConfig
from agent.perception.decode import CaptionDecoding
from envs.synthetic import all_captions

SMALL = CaptionerConfig(frame_size=32, channels=(8, 16), d_model=32, n_layers=2, n_heads=2, head_dim=16)


def _frames(b: int, t: int, size: int = 32) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(0).integers(0, 255, (b, t, size, size, 3), dtype=np.uint8))


def _sequence_and_steps(model: Captioner, frames: torch.Tensor):
    """Features and final state from one sequence pass and from frame-by-frame steps."""
    with torch.no_grad():
        feats, state = model(frames, model.initial_state(frames.shape[0]))
        s = model.initial_state(frames.shape[0])
        steps = []
        for t in range(frames.shape[1]):
            f, s = model.step(frames[:, t], s)
            steps.append(f)
    return feats, state, torch.stack(steps, 1), s


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt()).item()


def test_streaming_steps_equal_one_sequence_pass():
    torch.manual_seed(0)
    feats, state, stepped, s = _sequence_and_steps(Captioner(SMALL).eval(), _frames(3, 11))
    assert _rel(stepped, feats) < 1e-4
    for a, b in zip(state.layers, s.layers):
        assert torch.allclose(a, b, atol=1e-5)


def test_chunks_with_carried_state_equal_one_pass():
    torch.manual_seed(1)
    model = Captioner(SMALL).eval()
    frames = _frames(2, 20)
    with torch.no_grad():
        whole, _ = model(frames, model.initial_state(2))
        first, s = model(frames[:, :7], model.initial_state(2))
        second, _ = model(frames[:, 7:], s)
    assert _rel(torch.cat([first, second], 1), whole) < 1e-5


def test_random_weights_never_leave_the_grammar():
    grammar = set(all_captions())
    for seed in range(3):
        torch.manual_seed(seed)
        model = Captioner(SMALL).eval()
        decoding = CaptionDecoding(model, sorted(grammar), "cpu")
        captions = decoding.greedy(torch.randn(256, SMALL.d_model) * 3)
        assert all(c in grammar for c in captions)
        assert len(set(captions)) > 1


def test_softmax_baseline_streams_like_its_sequence_pass():
    from dataclasses import replace

    torch.manual_seed(2)
    feats, _, stepped, s = _sequence_and_steps(Captioner(replace(SMALL, mixer="softmax")).eval(), _frames(2, 9))
    assert _rel(stepped, feats) < 1e-4
    assert s.layers[0][0].shape[2] == 9  # the KV cache holds every frame


def test_our_state_stays_flat_while_the_kv_cache_grows():
    from launch.bench.caption import speed_along_stream
    from launch.bench_cmd import CHECKPOINTS

    ours = speed_along_stream(CHECKPOINTS / "captioner.pt", (400, 900), timed=20)
    softmax = speed_along_stream(CHECKPOINTS / "captioner-softmax.pt", (400, 900), timed=20)
    assert ours[0]["state_mb"] == ours[1]["state_mb"]
    assert softmax[1]["state_mb"] > 2 * softmax[0]["state_mb"]
