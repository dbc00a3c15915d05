"""Caption a live stream one frame at a time: constant time and memory per frame."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from agent.perception.decode import CaptionDecoding
from agent.perception.train import load_checkpoint
from envs.clips import square_resize

DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "captioner.pt"


class LiveCaptioner:
    """A captioner with its streaming state: ``caption(frame)`` → the caption in effect now."""

    def __init__(self, captions: Sequence[str], checkpoint: Path = DEFAULT_CHECKPOINT,
                 device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = load_checkpoint(checkpoint, device)
        self.size = self.model.cfg.frame_size
        self.decoding = CaptionDecoding(self.model, captions, self.device)
        self.state = self.model.initial_state(1, self.device)

    @torch.no_grad()
    def caption(self, rgb: np.ndarray) -> str:
        frame = torch.as_tensor(square_resize(rgb, self.size), device=self.device)[None]
        feature, self.state = self.model.step(frame, self.state)
        return self.decoding.greedy(feature)[0]
