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
