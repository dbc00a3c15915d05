"""The captioner benchmark: accuracy on fresh streams, and frames/s and memory along one long stream,
for ours (gated delta rule, constant state) beside the softmax-attention baseline (KV cache).

Speed at stream length L is measured at L: the stream's first L − n frames are pushed through the
model as a sequence (prefill, in chunks), then n single-frame steps — captioning included — are timed.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import torch

from agent.perception.decode import CaptionDecoding
from agent.perception.train import evaluate_captioner, load_checkpoint
from envs.synthetic import SceneConfig, StreamBatch, all_captions


def state_bytes(state) -> int:
    """Bytes the stream state holds (frame history plus every layer's state or KV cache)."""
    tensors = [state.frames] + [t for s in state.layers for t in (s if isinstance(s, tuple) else (s,))]
    return sum(t.numel() * t.element_size() for t in tensors)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@torch.no_grad()
def speed_along_stream(checkpoint: Path, lengths: tuple[int, ...], timed: int = 300, seed: int = 123,
                       device: str = "cpu") -> list[dict]:
    """frames/s of step + constrained decode at each stream length, batch 1."""
    model = load_checkpoint(checkpoint, device)
    decoding = CaptionDecoding(model, all_captions(), device)
    frames, _ = StreamBatch([seed], SceneConfig(frame_size=model.cfg.frame_size)).next(2000)
    clip = torch.as_tensor(frames, device=device)  # [1, 2000, S, S, 3], cycled
    state = model.initial_state(1, device)
    seen, rows = 0, []
    for length in lengths:
        while seen < length - timed:  # prefill in chunks up to where the timed steps start
            n = min(1000, length - timed - seen)
            start = seen % 2000
            chunk = clip[:, start: start + n] if start + n <= 2000 else clip[:, :n]
            _, state = model(chunk, state)
            seen += n
        t0 = time.perf_counter()
        for i in range(timed):
            feature, state = model.step(clip[:, (seen + i) % 2000], state)
            decoding.greedy(feature)
        elapsed = time.perf_counter() - t0
        seen += timed
        rows.append({"frame": seen, "fps": timed / elapsed, "ms_per_frame": 1000 * elapsed / timed,
                     "state_mb": state_bytes(state) / 2**20, "max_rss_mb": rss_mb()})
    return rows


def accuracy(checkpoint: Path, streams: int, frames: int, device: str = "cpu") -> dict:
    model = load_checkpoint(checkpoint, device)
    seeds = [8_000_000 + i for i in range(streams)]  # never used in training or in BENCHMARKS' other checks
    return evaluate_captioner(model, seeds, frames, torch.device(device))
