"""Where one batched caption step goes on the GPU, and what CUDA graphs and bf16 buy, at N streams.

    python benchmarks/caption_step_parts.py --streams 8192 20000

For each N: the step's parts run eagerly (input building, frame encoder, the whole streaming step, the
trie-constrained decode), then the whole step (frame copy in, step, decode to the end of the caption,
token ids back to the host; :class:`StreamServer`) eager against one CUDA-graph replay, in fp32 (TF32
convolutions, torch's default) and under bf16 autocast, and with the model's step through torch.compile;
ms per step and the share of streams whose caption differs from eager fp32's on the same 7 frames
after the first. Speed only: accuracy at scale is `thalamus bench caption --streams`.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.decode import CaptionDecoding  # noqa: E402
from agent.perception.serve import ServeConfig, StreamServer  # noqa: E402
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
        for cfg in (ServeConfig(), ServeConfig(graph=True), ServeConfig(bf16=True), ServeConfig(bf16=True, graph=True),
                    ServeConfig(graph=True, compile=True), ServeConfig(bf16=True, graph=True, compile=True)):
            name = f"{'bf16' if cfg.bf16 else 'fp32'} {'graph' if cfg.graph else 'eager'}{' compiled' if cfg.compile else ''}"
            try:
                server = StreamServer(model, decoding, model.initial_state(n, "cuda"), cfg)
                server.step(host[0])
                outs = [server.step(host[i]).clone() for i in range(1, 8)]
                reference = outs if reference is None else reference
                differ = sum(float((a != b).any(1).float().mean()) for a, b in zip(outs, reference)) / len(outs)
                t = ms(lambda: server.step(host[3]), 20)
            except Exception as e:  # a variant this stack cannot run (torch.compile) is reported, not fatal
                print(f"  {name}: failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}", flush=True)
                continue
            print(f"  {name}: {t:.2f} ms a step ({1000 / t:.1f} fps a stream), "
                  f"captions differing from eager fp32: {differ:.2%}", flush=True)
            del server
            torch.cuda.empty_cache()

if __name__ == "__main__":
    main()
