"""The diffusion policy's sampler on a GPU: eager against CUDA graphs, side by side in one process.

    python3 benchmarks/policy_gpu.py runs/mw-easy-50 agent/policy/checkpoints/mw-easy/*.pt [--batch 64]

For every checkpoint and every sampler (DDIM 16, DDIM 16 + SeaCache, DDIM 16 + SenCache,
DDIM 8, DDIM 6): ms per call of ``--batch`` chunks (p50/p99 over 200 calls, windows drawn from the
task's held-out demonstrations), body evaluations per chunk, the graphs' speed-up, and whether the
graphs give the eager chunks: the largest difference on the same noise, the same again on a second
call (no state carried between chunks), and a batch of 10 (padded to 16) against its eager rows.
Prints one line per sampler and task, then the JSON of all of them.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from agent.policy.diffusion.data import load_demos, windows
from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy
from agent.policy.diffusion.sampler import SamplerConfig
from launch.bench.policy import PolicyBenchConfig, time_calls

SAMPLERS = {"ddim16": SamplerConfig(steps=16), "ddim16+seacache": SamplerConfig(steps=16, cache="seacache"),
            "ddim16+sencache": SamplerConfig(steps=16, cache="sencache"), "ddim8": SamplerConfig(steps=8),
            "ddim6": SamplerConfig(steps=6)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("data", type=Path, help="the run store the checkpoints were trained on")
    p.add_argument("checkpoints", type=Path, nargs="+")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--calls", type=int, default=200)
    args = p.parse_args()
    rows = {}
    for path in args.checkpoints:
        ckpt = DiffusionCheckpoint.read(path)
        held = set(ckpt.provenance["episodes"]["held_out"])
        demos = load_demos([args.data], ckpt.provenance["task"])
        obs, _ = windows([e for e in demos.episodes if e.source in held], ckpt.normalizer,
                         ckpt.config.obs_horizon, ckpt.config.horizon)
        obs = torch.from_numpy(obs).cuda()
        cfg = ckpt.config
        noise = torch.randn((args.batch, cfg.horizon, cfg.action_dim), device="cuda",
                            generator=torch.Generator(device="cuda").manual_seed(1))
        x = obs[:args.batch]
        for name, sampler in SAMPLERS.items():
            eager, graphed = DiffusionPolicy(ckpt, sampler, "cuda"), DiffusionPolicy(ckpt, sampler, "cuda")
            eager.sampler.graphs = False
            ref, ref_nfe = eager.sampler.sample(x, noise=noise)
            first, nfe = graphed.sampler.sample(x, noise=noise)
            graphed.sampler.sample(obs[-args.batch:], noise=noise.flip(0))  # another chunk in between
            second, _ = graphed.sampler.sample(x, noise=noise)
            small, _ = graphed.sampler.sample(x[:10], noise=noise[:10])
            small_ref, _ = eager.sampler.sample(x[:10], noise=noise[:10])
            timing = PolicyBenchConfig(device="cuda", latency_batch=args.batch, latency_calls=args.calls)
            ms_eager, ms_graph = time_calls(eager, obs, timing), time_calls(graphed, obs, timing)
            row = {"nfe": float(nfe.float().mean()), "nfe_equal": bool(torch.equal(nfe, ref_nfe)),
                   "max_diff_vs_eager": float((first - ref).abs().max()),
                   "repeat_identical": bool(torch.equal(first, second)),
                   "padded_max_diff_vs_eager": float((small - small_ref).abs().max()),
                   "eager_ms_p50": float(np.percentile(ms_eager, 50)), "eager_ms_p99": float(np.percentile(ms_eager, 99)),
                   "graph_ms_p50": float(np.percentile(ms_graph, 50)), "graph_ms_p99": float(np.percentile(ms_graph, 99))}
            row["speedup_p50"] = row["eager_ms_p50"] / row["graph_ms_p50"]
            rows.setdefault(path.stem, {})[name] = row
            print(f"{path.stem:24s} {name:16s} nfe {row['nfe']:5.2f} eager {row['eager_ms_p50']:6.2f}/"
                  f"{row['eager_ms_p99']:6.2f} ms  graphs {row['graph_ms_p50']:5.2f}/{row['graph_ms_p99']:5.2f} ms "
                  f"(×{row['speedup_p50']:.1f})  diff {row['max_diff_vs_eager']:.2e} repeat {row['repeat_identical']} "
                  f"padded {row['padded_max_diff_vs_eager']:.2e}", flush=True)
    print(json.dumps({"batch": args.batch, "calls": args.calls, "device": torch.cuda.get_device_name(),
                      "torch": torch.__version__, "rows": rows}))


if __name__ == "__main__":
    main()
