"""The diffusion-policy bench: one checkpoint per task under five samplers, on the same held-out episodes.

Samplers: DDPM 100, DDIM 16, DDIM 16 + SeaCache, DDIM 16 + SenCache, and DDIM at the step count that
matches the cached runs' denoiser evaluations (``ddim_matched``: the larger of the two caches' mean
evaluations per chunk on that task, rounded up, so the baseline never gets fewer evaluations than a
cache it is compared with). Success: every sampler plays episodes 0..N-1 of `thalamus eval`'s seeds,
several envs in lockstep (`agent.policy.diffusion.rollout`). Speed: chunks are sampled again from
observation windows the policy met in those episodes, ``latency_batch`` windows per call, one call
after another, and each call is timed (a 30 Hz arm waits for one chunk: batch 1; a GPU serving many
arms: batch 64).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.evaluation import wilson_interval
from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy
from agent.policy.diffusion.rollout import make_envs, rollouts
from agent.policy.diffusion.sampler import SamplerConfig

SAMPLERS: dict[str, SamplerConfig] = {
    "ddpm100": SamplerConfig(method="ddpm"),
    "ddim16": SamplerConfig(steps=16),
    "ddim16+seacache": SamplerConfig(steps=16, cache="seacache"),
    "ddim16+sencache": SamplerConfig(steps=16, cache="sencache"),
}


@dataclass(frozen=True)
class PolicyBenchConfig:
    episodes: int = 50  # per task and sampler
    seed: int = 0  # evaluation seeds eval_seed(seed, i)
    device: str = "cpu"
    envs: int = 10  # envs stepped in lockstep for the success episodes
    latency_batch: int = 1  # chunks per timed sampler call
    latency_calls: int = 200  # timed calls per sampler and task
    sea_threshold: float | None = None  # SeaCache's δ (None: its default)
    sen_threshold: float | None = None  # SenCache's ε (None: its default)


@dataclass
class Row:
    """One sampler on one task."""

    successes: list[bool]
    nfe: list[int]  # body evaluations of every chunk sampled in the episodes
    ms: list[float]  # timed calls
    steps: int  # DDIM steps (100 for DDPM)

    def summary(self) -> dict[str, Any]:
        n, k = len(self.successes), int(sum(self.successes))
        ms = np.asarray(self.ms)
        return {"success": k / n, "success_ci95": wilson_interval(k, n), "episodes": n,
                "nfe": float(np.mean(self.nfe)), "ms_p50": float(np.percentile(ms, 50)),
                "ms_p99": float(np.percentile(ms, 99)), "steps": self.steps}


def time_calls(policy: DiffusionPolicy, windows: torch.Tensor, cfg: PolicyBenchConfig) -> list[float]:
    """Wall ms of ``latency_calls`` sampler calls of ``latency_batch`` windows each (after 5 untimed)."""
    g = torch.Generator(device=policy.device).manual_seed(cfg.seed)
    pick = torch.randint(0, len(windows), (cfg.latency_calls + 5, cfg.latency_batch),
                         generator=torch.Generator().manual_seed(cfg.seed))
    out = []
    for call in range(cfg.latency_calls + 5):
        obs = windows[pick[call]].to(policy.device)
        if policy.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        chunk, _ = policy.sampler.sample(obs, g)
        chunk.cpu()
        if call >= 5:
            out.append((time.perf_counter() - t0) * 1e3)
    return out


def bench_task(ckpt: DiffusionCheckpoint, env_id: str, cfg: PolicyBenchConfig,
               say: Callable[[str], None] = lambda _: None) -> dict[str, Row]:
    """Every sampler of the bench on one task."""
    samplers = dict(SAMPLERS)
    samplers["ddim16+seacache"] = replace(samplers["ddim16+seacache"], threshold=cfg.sea_threshold)
    samplers["ddim16+sencache"] = replace(samplers["ddim16+sencache"], threshold=cfg.sen_threshold)
    rows: dict[str, Row] = {}
    windows: torch.Tensor | None = None
    envs = make_envs(env_id, min(cfg.envs, cfg.episodes), cfg.seed)

    def run(name: str, sampler: SamplerConfig) -> None:
        nonlocal windows
        say(f"{env_id}: {name}")
        policy = DiffusionPolicy(ckpt, sampler, cfg.device)
        outcomes = rollouts(policy, env_id, cfg.episodes, cfg.seed, envs=envs)
        if windows is None:  # the first sampler's windows serve every sampler's timing
            windows = policy.windows()
        nfe = policy.chunks.nfe()
        steps = 100 if sampler.method == "ddpm" else sampler.steps
        rows[name] = Row([o.success for o in outcomes], nfe, time_calls(policy, windows, cfg), steps)

    try:
        for name, sampler in samplers.items():
            run(name, sampler)
        cached = max(np.mean(rows[n].nfe) for n in ("ddim16+seacache", "ddim16+sencache"))
        run("ddim_matched", SamplerConfig(steps=max(1, math.ceil(cached - 1e-9))))
    finally:
        for env in envs:
            env.close()
    return rows


def pooled(per_task: dict[str, dict[str, Row]]) -> dict[str, dict[str, Any]]:
    """Each sampler over all tasks: success pooled over every episode, NFE and times over every chunk."""
    names = next(iter(per_task.values())).keys()
    out = {}
    for name in names:
        rows = [per_task[t][name] for t in per_task]
        merged = Row([s for r in rows for s in r.successes], [n for r in rows for n in r.nfe],
                     [m for r in rows for m in r.ms], rows[0].steps)
        out[name] = {**merged.summary(), "steps_per_task": {t: per_task[t][name].steps for t in per_task},
                     "per_task": {t: per_task[t][name].summary() for t in per_task}}
    return out


def checkpoint_for(folder: Path, task: str) -> Path:
    return folder / f"{task}.pt"

