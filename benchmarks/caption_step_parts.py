"""Where one batched caption step goes on the GPU, and what CUDA graphs and bf16 buy, at N streams.

    python benchmarks/caption_step_parts.py --streams 8192 20000

For each N: the step's parts run eagerly (input building, frame encoder, the whole streaming step, the
trie-constrained decode), then the whole step (frame copy in, step, decode to the end of the caption,
token ids back to the host) eager against one CUDA-graph replay, in fp32 (TF32 convolutions, torch's
default) and under bf16 autocast (with the encoder's weights channels-last too); ms per step and the
share of streams whose caption differs from eager fp32's on the same 7 frames after the first. Speed only: accuracy at scale is `thalamus bench caption --streams`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.decode import CaptionDecoding  # noqa: E402
from agent.perception.train import load_checkpoint  # noqa: E402
from envs.synthetic import SceneConfig, StreamBatch, all_captions  # noqa: E402


def ms(fn, calls: int = 10) -> float:
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    torch.cuda.synchronize()
    return (time.perf_counter() - t0) / calls * 1e3


class Stepper:
    """One step of N streams, frames from pinned host memory to token ids on the host; ``graph``:
    captured once and replayed (the decode runs to ``max_len`` without its early exit)."""

    def __init__(self, model, decoding: CaptionDecoding, first: torch.Tensor, bf16: bool, graph: bool) -> None:
        """``first``: every stream's first frame [N, S, S, 3], stepped eagerly (a graph is captured after it)."""
        self.model, self.decoding, self.bf16 = model, decoding, bf16
        n = first.shape[0]
        self.state = model.initial_state(n, "cuda")
        self.frame = first.cuda()
        self.host_tokens = torch.zeros(n, model.cfg.max_len, dtype=torch.long).pin_memory()
        self._body()
        self.graph = None
        if graph:
            snapshot = [t.clone() for t in (self.state.frames, *self.state.layers)]
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                for _ in range(2):
                    self.tokens = self._body(early_exit=False)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.tokens = self._body(early_exit=False)
            for t, saved in zip((self.state.frames, *self.state.layers), snapshot):
                t.copy_(saved)  # as after the first frame: the warm-up and capture steps never happened

    @torch.no_grad()
    def _body(self, early_exit: bool = True) -> torch.Tensor:
        with torch.autocast("cuda", torch.bfloat16, enabled=self.bf16):
            feature, new = self.model.step(self.frame, self.state)
            tokens = self.decoding.tokens(feature.float(), early_exit=early_exit)
        self.state.frames.copy_(new.frames)
        for old, s in zip(self.state.layers, new.layers):
            old.copy_(s)
        self.state.started = True
        return tokens

    def __call__(self, host_frame: torch.Tensor) -> torch.Tensor:
        self.frame.copy_(host_frame, non_blocking=True)
        tokens = self._body() if self.graph is None else (self.graph.replay(), self.tokens)[1]
        self.host_tokens.copy_(tokens, non_blocking=True)
        torch.cuda.current_stream().synchronize()
        return self.host_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, nargs="+", default=[8192, 20000])
    parser.add_argument("--checkpoint", type=Path, default=Path("agent/perception/checkpoints/captioner.pt"))
    args = parser.parse_args()
    model = load_checkpoint(args.checkpoint, "cuda")
    decoding = CaptionDecoding(model, all_captions(), "cuda")
    base, _ = StreamBatch(list(range(64)), SceneConfig(frame_size=model.cfg.frame_size)).next(8)
    for n in args.streams:
        host = torch.as_tensor(base)[torch.arange(n) % 64].transpose(0, 1).contiguous().pin_memory()  # [8, N, ...]
        state = model.initial_state(n, "cuda")
        frame = host[0].cuda()
        with torch.no_grad():
            x, _ = model._inputs(frame[:, None], state)
            feature, _ = model.step(frame, state)
            parts = {"inputs": ms(lambda: model._inputs(frame[:, None], state)),
                     "encoder": ms(lambda: model.encoder(x[:, 0])),
                     "step": ms(lambda: model.step(frame, state)),
                     "decode": ms(lambda: decoding.tokens(feature))}
        print(f"{n} streams, eager parts (ms): " + ", ".join(f"{k} {v:.2f}" for k, v in parts.items()), flush=True)
        reference = None
        for bf16, graph, channels_last in ((False, False, False), (False, True, False), (True, False, False),
                                           (True, True, False), (True, True, True)):
            model.encoder.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
            stepper = Stepper(model, decoding, host[0], bf16, graph)
            outs = [stepper(host[i]).clone() for i in range(1, 8)]
            reference = outs if reference is None else reference
            differ = sum(float((a != b).any(1).float().mean()) for a, b in zip(outs, reference)) / len(outs)
            t = ms(lambda: stepper(host[3]), 20)
            name = f"{'bf16' if bf16 else 'fp32'} {'graph' if graph else 'eager'}{' channels-last' if channels_last else ''}"
            print(f"  {name}: {t:.2f} ms a step ({1000 / t:.1f} fps a stream), "
                  f"captions differing from eager fp32: {differ:.2%}", flush=True)
            del stepper
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
