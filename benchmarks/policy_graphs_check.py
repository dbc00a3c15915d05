"""On a GPU: the CUDA-graph sampler against the eager one (same chunks, same evaluations) and their ms
per call of 64 chunks, for each step cache. Usage: python3 benchmarks/policy_graphs_check.py CKPT"""

import sys
import time
from pathlib import Path

import torch

from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy
from agent.policy.diffusion.sampler import SamplerConfig


def timed(fn, n: int = 100) -> tuple[float, float]:
    out = []
    for k in range(n + 5):
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        if k >= 5:
            out.append((time.perf_counter() - t0) * 1e3)
    out.sort()
    return out[len(out) // 2], out[int(len(out) * 0.99)]


ckpt = DiffusionCheckpoint.read(Path(sys.argv[1]))
g = torch.Generator().manual_seed(0)
obs = (torch.rand(64, 78, generator=g) * 2 - 1).cuda()
noise = torch.randn(64, 16, 4, generator=g).cuda()
for cache in ("none", "seacache", "sencache"):
    policy = DiffusionPolicy(ckpt, SamplerConfig(steps=16, cache=cache), "cuda")
    s = policy.sampler
    graphed, nfe_g = s.sample(obs, noise=noise)
    with torch.inference_mode():
        eager, nfe_e = s._sample_eager(obs, noise)
        e50, e99 = timed(lambda: s._sample_eager(obs, noise))
    p50, p99 = timed(lambda: s.sample(obs, noise=noise))
    cpu = DiffusionPolicy(ckpt, SamplerConfig(steps=16, cache=cache)).sampler.sample(obs.cpu(), noise=noise.cpu())[0]
    per_sample = lambda a, b: (a.cpu() - b.cpu()).flatten(1).abs().max(1).values  # noqa: E731
    print(f"{cache}: graphed {p50:.2f} / {p99:.2f} ms (p50/p99, 64 chunks), eager {e50:.2f} / {e99:.2f} ms; "
          f"nfe {nfe_g.float().mean():.2f}, equal to eager's: {torch.equal(nfe_g, nfe_e)}; per-sample max "
          f"|graphed - eager| median {per_sample(graphed, eager).median():.1e}, max {per_sample(graphed, eager).max():.1e}; "
          f"|eager GPU - CPU| median {per_sample(eager, cpu).median():.1e}, max {per_sample(eager, cpu).max():.1e}; "
          f"samples apart by > 0.01: {int((per_sample(graphed, eager) > 0.01).sum())} (graphed/eager), "
          f"{int((per_sample(eager, cpu) > 0.01).sum())} (GPU/CPU)", flush=True)
