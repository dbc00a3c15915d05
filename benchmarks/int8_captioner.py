"""Would an int8 captioner be faster on the CPU? fp32 against PyTorch's eager int8 (x86 kernels) at batch 1.

    python -P benchmarks/int8_captioner.py --checkpoint agent/perception/checkpoints/captioner-cartpole.pt

The int8 model is the shipped checkpoint made integer the way PyTorch's eager quantization tooling
does (``torch.ao.quantization``): the encoder's conv + BatchNorm + ReLU triples fused and run in int8
from one quantize at its input to one dequantize after its projection, every other linear layer
quantized between a quantize and a dequantize, the decoder's GRU cell with dynamic int8 weights;
LayerNorms and the gated delta rule's fp32 state stay float. Its scales are calibrated on the held-out
streams the accuracy is scored on, which quantization-aware training could only improve; speed does
not depend on how the scales were found. Reported: frames/s of one step + constrained decode, and the
step and the decode alone, on 1 and 2 threads, int8 beside fp32 in one process, with the ratio; and
exact-match accuracy of both on the same held-out streams.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import torch
from torch import nn
from torch.ao import quantization as tq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.captioner import Captioner  # noqa: E402
from agent.perception.data import open_batch  # noqa: E402
from agent.perception.decode import CaptionDecoding  # noqa: E402
from agent.perception.train import checkpoint_grammar, checkpoint_meta, evaluate_captioner, load_checkpoint  # noqa: E402

SEED = 8_000_000  # the held-out streams of `thalamus bench caption`


class _QuantizedEncoder(nn.Module):
    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.quant, self.conv, self.proj, self.dequant = tq.QuantStub(), encoder.conv, encoder.proj, tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.proj(self.conv(self.quant(x)).flatten(1)))


class _QuantizedLinear(nn.Module):
    def __init__(self, linear: nn.Linear) -> None:
        super().__init__()
        self.quant, self.linear, self.dequant = tq.QuantStub(), linear, tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dequant(self.linear(self.quant(x)))


def _wrap_linears(module: nn.Module) -> None:
    for name, child in module.named_children():
        if isinstance(child, nn.Linear):
            setattr(module, name, _QuantizedLinear(child))
        else:
            _wrap_linears(child)


def int8_model(model: Captioner, calibrate: torch.Tensor) -> Captioner:
    """A float captioner → its eager int8 form, observers calibrated on ``calibrate`` [B, T, S, S, 3]."""
    torch.backends.quantized.engine = "x86"
    model = copy.deepcopy(model).eval()
    n = len(model.cfg.channels)
    tq.fuse_modules(model.encoder.conv, [[str(3 * i), str(3 * i + 1), str(3 * i + 2)] for i in range(n)], inplace=True)
    model.encoder = _QuantizedEncoder(model.encoder)
    _wrap_linears(model.blocks)
    _wrap_linears(model.decoder)
    for module in model.modules():
        if isinstance(module, (_QuantizedEncoder, _QuantizedLinear)):
            module.qconfig = tq.get_default_qconfig("x86")
    tq.prepare(model, inplace=True)
    with torch.no_grad():
        model(calibrate, model.initial_state(calibrate.shape[0]))
    tq.convert(model, inplace=True)
    model.decoder.cell = tq.quantize_dynamic(nn.Sequential(model.decoder.cell), {nn.GRUCell}, dtype=torch.qint8)[0]
    return model


@torch.no_grad()
def timing(model: Captioner, grammar: list[str], frames: torch.Tensor, calls: int) -> dict:
    """ms per step, per constrained decode, and frames/s of both, at batch 1 along one stream."""
    decoding = CaptionDecoding(model, grammar, "cpu")
    state = model.initial_state(1)
    for i in range(20):
        feature, state = model.step(frames[i % len(frames)][None], state)
        decoding.tokens(feature)
    t0 = time.perf_counter()
    for i in range(calls):
        feature, state = model.step(frames[i % len(frames)][None], state)
    step = (time.perf_counter() - t0) / calls
    t0 = time.perf_counter()
    for _ in range(calls):
        decoding.tokens(feature)
    dec = (time.perf_counter() - t0) / calls
    return {"step_ms": 1e3 * step, "decode_ms": 1e3 * dec, "fps": 1 / (step + dec)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("agent/perception/checkpoints/captioner-cartpole.pt"))
    parser.add_argument("--streams", type=int, default=16, help="held-out streams scored (480 frames each)")
    parser.add_argument("--calls", type=int, default=300, help="timed steps and decodes per measurement")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    fp32 = load_checkpoint(args.checkpoint)
    grammar = checkpoint_grammar(args.checkpoint)
    data = checkpoint_meta(args.checkpoint).get("train", {}).get("data", "synthetic")
    seeds = [SEED + i for i in range(args.streams)]
    clip, _ = open_batch(data, seeds[:4], fp32.cfg.frame_size).next(240)
    int8 = int8_model(fp32, torch.as_tensor(clip))
    frames = torch.as_tensor(clip[0])
    out = {"checkpoint": str(args.checkpoint), "data": data, "streams": args.streams, "timing": {}, "exact": {}}
    for name, model in (("fp32", fp32), ("int8", int8)):
        out["exact"][name] = evaluate_captioner(model, seeds, 480, torch.device("cpu"), data=data)["exact"]
        print(f"{name}: exact {out['exact'][name]:.1%}", flush=True)
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for rep in range(2):  # interleaved, twice: a busy neighbour slows both alike
            for name, model in (("fp32", fp32), ("int8", int8)):
                row = timing(model, grammar, frames, args.calls)
                out["timing"].setdefault(f"{name}/{threads}", []).append(row)
                print(f"{threads} thread(s) {name}: step {row['step_ms']:.2f} ms, decode {row['decode_ms']:.2f} ms, "
                      f"{row['fps']:.0f} fps", flush=True)
        best = {name: max(r["fps"] for r in out["timing"][f"{name}/{threads}"]) for name in ("fp32", "int8")}
        print(f"{threads} thread(s): int8 / fp32 fps = {best['int8'] / best['fp32']:.2f}")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
