"""The captioner's training step on a GPU against the same step on the CPU (PyTorch's reference path):
features, loss and every parameter's gradient for one chunk of real training frames, then the losses
of N optimizer steps taken from the same weights on the same chunks, on the CPU, on the GPU, and on the
GPU replayed as one CUDA graph (``TrainConfig.graph``). A GPU path that trains wrongly (a kernel, the
fused GRU, the optimizer, the graph's buffers) shows here in seconds, not after a 3,000-step run.

    python -P benchmarks/train_step_check.py --data env:CartPole-v1 --init agent/perception/checkpoints/captioner-cartpole.pt
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.camera import CameraConfig  # noqa: E402
from agent.perception.data import grammar, open_batch  # noqa: E402
from agent.perception.train import CaptionTable, TrainConfig, _gaps, _targets, load_checkpoint  # noqa: E402
from agent.perception.train_steps import TrainSteps, caption_loss, make_optimizer  # noqa: E402


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference relative to the reference's largest magnitude."""
    return float((a.detach().float().cpu() - b.detach().float().cpu()).abs().max() / b.detach().float().abs().max().clamp_min(1e-12))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="env:CartPole-v1")
    parser.add_argument("--init", type=Path, default=Path("agent/perception/checkpoints/captioner-cartpole.pt"))
    parser.add_argument("--camera", action="store_true", help="frames as the busy camera delivers them (with gaps)")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps compared (default: %(default)s)")
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--chunk", type=int, default=32)
    parser.add_argument("--device", default="cuda", help="the device checked against the CPU (default: %(default)s)")
    args = parser.parse_args()
    cuda = torch.device(args.device)
    model_cpu = load_checkpoint(args.init).train()
    model_gpu = copy.deepcopy(model_cpu).to(cuda)
    captions = grammar(args.data)
    table = CaptionTable.of(model_cpu.vocab, captions, model_cpu.cfg.max_len)
    batch = open_batch(args.data, list(range(args.streams)), model_cpu.cfg.frame_size,
                       CameraConfig() if args.camera else None)
    chunks = [batch.next(args.chunk) for _ in range(max(args.steps, 1))]

    frames, truths = chunks[0]
    for name, model, dev in (("cpu", model_cpu, torch.device("cpu")), ("cuda", model_gpu, cuda)):
        state = model.initial_state(args.streams, dev)
        feats, _ = model(torch.as_tensor(frames).to(dev), state, _gaps(truths, dev))
        loss = caption_loss(model, feats, _targets(truths, table, dev))
        model.zero_grad(set_to_none=True)
        loss.backward()
        if name == "cpu":
            ref = (feats.detach(), loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()})
        else:
            print(f"features rel diff {rel(feats, ref[0]):.2e}  loss cpu {ref[1].item():.5f} cuda {loss.item():.5f}")
            # against the largest gradient of the model: a parameter whose own gradient is ~0 (a conv bias
            # before BatchNorm) would otherwise show rounding noise as a large relative difference
            scale = max(g.abs().max() for g in ref[2].values())
            worst = sorted((float((p.grad.detach().cpu() - ref[2][k]).abs().max() / scale), k)
                           for k, p in model.named_parameters() if p.grad is not None)[::-1]
            for d, k in worst[:8]:
                print(f"  grad diff / largest gradient {d:.2e}  {k}")
            missing = [k for k, p in model.named_parameters() if p.grad is None and ref[2].get(k) is not None]
            print("  grads missing on cuda:", missing[:5])

    cfg = TrainConfig()
    losses = {}
    runs = [("cpu", model_cpu, torch.device("cpu"), False), ("cuda", model_gpu, cuda, False)]
    if cuda.type == "cuda" and model_cpu.cfg.mixer == "delta":  # the same steps replayed as one CUDA graph
        runs.append(("cuda graph", copy.deepcopy(model_cpu).to(cuda), cuda, True))
    for name, model, dev, graph in runs:
        opt = make_optimizer(model, cfg.lr, cfg.weight_decay, capturable=graph)
        steps = TrainSteps(model, opt, model.initial_state(args.streams, dev), graph=graph)
        losses[name] = []
        for frames, truths in chunks[:args.steps]:
            loss, _ = steps(torch.as_tensor(frames).to(dev), _targets(truths, table, dev), _gaps(truths, dev))
            losses[name].append(loss.item())
    for i, step_losses in enumerate(zip(*losses.values())):
        print(f"step {i:3d} loss " + "  ".join(f"{name} {x:.5f}" for name, x in zip(losses, step_losses)))


if __name__ == "__main__":
    main()
