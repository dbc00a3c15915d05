"""StreamServer: N streams stepped together give each stream the caption the model gives it alone."""

import pytest
import torch

from agent.perception.decode import CaptionDecoding
from agent.perception.serve import ServeConfig, StreamServer
from agent.perception.train import load_checkpoint
from envs.synthetic import SceneConfig, StreamBatch, all_captions

CHECKPOINTS = "agent/perception/checkpoints"


@pytest.mark.parametrize("name", ["captioner.pt", "captioner-softmax.pt"])
def test_served_streams_caption_as_each_stream_alone(name: str) -> None:
    model = load_checkpoint(f"{CHECKPOINTS}/{name}", "cpu")
    decoding = CaptionDecoding(model, all_captions(), "cpu")
    frames, _ = StreamBatch([7, 8, 9], SceneConfig(frame_size=model.cfg.frame_size)).next(12)
    frames = torch.as_tensor(frames)  # [3, 12, S, S, 3]
    server = StreamServer(model, decoding, model.initial_state(3))
    alone = [model.initial_state(1) for _ in range(3)]
    for t in range(12):
        served = server.step(frames[:, t]).clone()
        for i in range(3):
            feature, alone[i] = model.step(frames[i:i + 1, t], alone[i])
            assert torch.equal(served[i], decoding.tokens(feature)[0]), (t, i)


def test_a_graph_needs_cuda() -> None:
    model = load_checkpoint(f"{CHECKPOINTS}/captioner.pt", "cpu")
    with pytest.raises(ValueError, match="CUDA graph"):
        StreamServer(model, CaptionDecoding(model, all_captions(), "cpu"), model.initial_state(2), ServeConfig(graph=True))


def test_a_stream_that_joins_a_running_server_is_captioned_as_if_alone() -> None:
    """Slot 1's stream leaves after 5 frames and a new one takes the slot: the newcomer's captions
    are its own from its first frame, and the streams beside it never notice."""
    model = load_checkpoint(f"{CHECKPOINTS}/captioner.pt", "cpu")  # with frame timing: a first frame has no gap
    decoding = CaptionDecoding(model, all_captions(), "cpu")
    frames = torch.as_tensor(StreamBatch([11, 12, 13, 14], SceneConfig(frame_size=model.cfg.frame_size)).next(12)[0])
    server = StreamServer(model, decoding, model.initial_state(3))
    alone = [model.initial_state(1) for _ in range(4)]

    def alone_tokens(stream: int, t: int) -> torch.Tensor:
        feature, alone[stream] = model.step(frames[stream:stream + 1, t], alone[stream])
        return decoding.tokens(feature)[0]

    for t in range(5):
        served = server.step(frames[:3, t]).clone()
        assert all(torch.equal(served[i], alone_tokens(i, t)) for i in range(3)), t
    server.join(torch.tensor([1]), frames[3:4, 0])
    for t in range(5, 12):
        served = server.step(torch.stack([frames[0, t], frames[3, t - 5], frames[2, t]])).clone()
        assert torch.equal(served[0], alone_tokens(0, t)) and torch.equal(served[2], alone_tokens(2, t)), t
        assert torch.equal(served[1], alone_tokens(3, t - 5)), t


def test_bench_rows_and_served_accuracy_on_the_cpu() -> None:
    """`bench caption --streams`'s parts: a row per N with the state each N holds, and held-out streams
    stepped through the server captioned as well as the shipped captioner does (97% on 2,022 segments)."""
    from launch.bench.caption import served_accuracy, state_bytes, streams_at

    model = load_checkpoint(f"{CHECKPOINTS}/captioner.pt", "cpu")
    rows = streams_at(f"{CHECKPOINTS}/captioner.pt", [2, 3], "cpu", age=5)
    assert [r["streams"] for r in rows] == [2, 3] and all(r["fps_per_stream"] > 0 for r in rows)
    assert rows[1]["state_mb"] * 2**20 == state_bytes(model.initial_state(3))
    assert served_accuracy(f"{CHECKPOINTS}/captioner.pt", "cpu", streams=16, frames=240) >= 0.9
