"""How far each sampler's chunks land from DDIM 16's on the same noise, on held-out demonstration windows:
why a step cache does or does not beat simply taking fewer steps.

    python3 benchmarks/policy_fidelity.py agent/policy/checkpoints/mw-easy/door-lock-v3.pt runs/mw-easy-50

For each sampler: mean body evaluations per chunk, and the mean squared distance of the executed 8
actions from DDIM 16's and from the expert's (normalised action units), over the checkpoint's
held-out episodes (its provenance names them)."""

import json
import sys
from pathlib import Path

import numpy as np
import torch

from agent.policy.diffusion.data import load_demos, windows
from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy
from agent.policy.diffusion.sampler import SamplerConfig


def main(ckpt_path: str, data: str) -> None:
    ckpt = DiffusionCheckpoint.read(Path(ckpt_path))
    held = set(ckpt.provenance["episodes"]["held_out"])
    demos = load_demos([Path(data)], ckpt.provenance["task"])
    episodes = [e for e in demos.episodes if e.source in held]
    obs, act = windows(episodes, ckpt.normalizer, ckpt.config.obs_horizon, ckpt.config.horizon)
    obs, act = torch.from_numpy(obs), torch.from_numpy(act)
    noise = torch.randn((len(obs), ckpt.config.horizon, ckpt.config.action_dim), generator=torch.Generator().manual_seed(0))
    n = ckpt.config.n_action
    ref = DiffusionPolicy(ckpt, SamplerConfig(steps=16)).sampler.sample(obs, noise=noise)[0]
    rows = {}
    samplers = {f"ddim{k}": SamplerConfig(steps=k) for k in (4, 5, 6, 7, 8, 10, 16)}
    samplers |= {f"seacache δ={d}": SamplerConfig(steps=16, cache="seacache", threshold=d) for d in (0.2, 0.5, 1.0)}
    samplers |= {f"sencache ε={e}": SamplerConfig(steps=16, cache="sencache", threshold=e) for e in (0.1, 0.3, 1.0)}
    for name, cfg in samplers.items():
        x, nfe = DiffusionPolicy(ckpt, cfg).sampler.sample(obs, noise=noise)
        rows[name] = {"nfe": float(nfe.float().mean()), "mse_vs_ddim16": float(((x - ref)[:, :n] ** 2).mean()),
                      "mse_vs_expert": float(((x - act)[:, :n] ** 2).mean())}
        print(f"{name:16s} nfe {rows[name]['nfe']:5.2f}  vs DDIM 16 {rows[name]['mse_vs_ddim16']:.5f}  "
              f"vs expert {rows[name]['mse_vs_expert']:.5f}", flush=True)
    print(json.dumps({"checkpoint": ckpt_path, "windows": len(obs), "rows": rows}))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main(*sys.argv[1:3])
