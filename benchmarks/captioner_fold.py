"""The captioner on one CPU core with and without BatchNorm folded into its convs (channels-last), and
folded with the convs in bf16 (the CaptionActor's choice where the CPU has bf16 instructions), and
that bf16 captioner compiled (``LiveCaptioner.compile``: a frame's step and decode as one function, what
the CaptionActor of a long CPU run uses), as `thalamus run`'s CaptionActor calls it: 8 streams, 12
frames a call, side by side in one process. ``scaled input`` is the bf16 fold as it was until
2026-12-05: the encoder read the frame and its differences scaled to [-1, 1], built every call.

    python -P benchmarks/captioner_fold.py --checkpoint agent/perception/checkpoints/captioner-cartpole.pt
    python -P benchmarks/captioner_fold.py --frames 1     # one step a call: a captioner that keeps up
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.perception.captioner import FrameTokenizer  # noqa: E402
from agent.perception.live import CHECKPOINTS, LiveCaptioner  # noqa: E402
from agent.perception.train import load_checkpoint  # noqa: E402


class ScaledInputBf16(FrameTokenizer):
    """The encoder as folded before 2026-12-05: it takes the scaled input and casts it to bf16."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.conv(x.to(torch.bfloat16)).float().flatten(1))


def scaled_input_bf16(checkpoint: Path, streams: int) -> LiveCaptioner:
    """The bf16 captioner with BatchNorm folded but the input scaling not: the fold before 2026-12-05."""
    captioner = LiveCaptioner(checkpoint, streams=streams, cpu_bf16=True)
    model = load_checkpoint(checkpoint)
    layers = list(model.encoder.conv)
    folded = [m for conv, norm, act in zip(layers[0::3], layers[1::3], layers[2::3])
              for m in (fuse_conv_bn_eval(conv, norm), act)]
    model.encoder.conv = nn.Sequential(*folded).to(memory_format=torch.channels_last).to(torch.bfloat16)
    model.encoder.__class__ = ScaledInputBf16
    captioner.model = captioner.decoding.model = model
    return captioner


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", type=Path, default=CHECKPOINTS / "captioner-cartpole.pt")
    p.add_argument("--streams", type=int, default=8, help="streams (default: %(default)s)")
    p.add_argument("--frames", type=int, default=12, help="frames of each stream a call (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=3, help="alternating timings of 2 s each (default: %(default)s)")
    args = p.parse_args()
    torch.set_num_threads(1)
    folded = LiveCaptioner(args.checkpoint, streams=args.streams)
    plain = LiveCaptioner(args.checkpoint, streams=args.streams)
    plain.model = load_checkpoint(args.checkpoint)  # BatchNorm as trained
    bf16 = LiveCaptioner(args.checkpoint, streams=args.streams, cpu_bf16=True)
    compiled = LiveCaptioner(args.checkpoint, streams=args.streams, cpu_bf16=True)
    compiled.compile()
    size = folded.size
    frames = np.random.default_rng(0).integers(0, 256, (args.frames, args.streams, size, size, 3), np.uint8)
    before = scaled_input_bf16(args.checkpoint, args.streams)
    contenders = {"plain": plain, "folded": folded, "scaled input": before, "bf16": bf16, "compiled": compiled}
    first = {name: c.caption_steps(frames) for name, c in contenders.items()}  # each from a fresh state
    same = np.array_equal(first["folded"], first["plain"])
    agree = (first["bf16"] == first["folded"]).all(-1).mean()
    same_compiled = (first["compiled"] == first["bf16"]).all(-1).mean()
    fps: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(args.rounds):
        for name, captioner in contenders.items():
            start, calls = time.perf_counter(), 0
            while time.perf_counter() - start < 2:
                captioner.caption_steps(frames)
                calls += 1
            fps[name].append(calls * frames.shape[0] * frames.shape[1] / (time.perf_counter() - start))
    ratio = np.mean(fps["folded"]) / np.mean(fps["plain"])
    print(f"same tokens: {same}; frames/s plain {[round(x) for x in fps['plain']]}, folded "
          f"{[round(x) for x in fps['folded']]}; folded / plain {ratio:.2f}")
    agree_before = (first["bf16"] == first["scaled input"]).all(-1).mean()
    print(f"bf16, scaled input (the fold before 2026-12-05): frames/s {[round(x) for x in fps['scaled input']]}; "
          f"bf16 / it {np.mean(fps['bf16']) / np.mean(fps['scaled input']):.2f} (the same captions on {agree_before:.0%})")
    print(f"bf16 convs (captions as folded's on {agree:.0%} of these random frames): frames/s "
          f"{[round(x) for x in fps['bf16']]}; bf16 / folded {np.mean(fps['bf16']) / np.mean(fps['folded']):.2f}")
    print(f"bf16 compiled (captions as bf16's on {same_compiled:.0%}): frames/s {[round(x) for x in fps['compiled']]}; "
          f"compiled / bf16 {np.mean(fps['compiled']) / np.mean(fps['bf16']):.2f}")


if __name__ == "__main__":
    main()
