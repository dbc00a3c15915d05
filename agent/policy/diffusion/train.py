"""Training a diffusion policy on demonstrations (behind `thalamus train policy`), top to bottom:

1. read the task's episodes from the run stores, hold some out (by episode), fit the state scaling;
2. DDPM training: a random window, a random noise level of 100, regress the added noise (MSE), Adam
   with a warm-up and cosine decay, an EMA of the weights (the EMA is what acts);
3. score the EMA on the held-out episodes (noise-prediction loss at fixed noise draws, and the error
   of DDIM-sampled actions against the expert's);
4. measure what the step caches need: SeaCache's spectrum slope β from the training actions,
   SenCache's sensitivity table from training windows;
5. write the checkpoint (with what it was trained on and how), then play rollouts with DDIM and
   record the success rate in it too.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from agent.checkpoints import save_tensors
from agent.optim import Adam
from agent.policy.diffusion.config import DiffusionConfig, PolicyTrainConfig
from agent.policy.diffusion.data import Normalizer, load_demos, spectrum_slope, split, windows
from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy
from agent.policy.diffusion.sampler import Sampler, SamplerConfig
from agent.policy.diffusion.sensitivity import estimate_sensitivity
from agent.policy.diffusion.unet import Denoiser, parameter_count

SCORE_WINDOWS = 512  # held-out windows scored
TABLE_WINDOWS = 128  # training windows SenCache's table is measured on (300 body evaluations each)


Progress = Callable[[str, int, int, dict[str, float]], None]  # (phase, done, total, metrics)


def learning_rate(step: int, steps: int, peak: float) -> float:
    """Linear warm-up over the first min(200, steps / 10) steps, then cosine from ``peak`` to 0."""
    warm = min(200, steps // 10 + 1)
    if step < warm:
        return peak * (step + 1) / warm
    return peak * 0.5 * (1 + math.cos(math.pi * (step - warm) / max(1, steps - warm)))


@torch.no_grad()
def _held_out_scores(model: Denoiser, schedule: NoiseSchedule, obs: torch.Tensor, act: torch.Tensor,
                     seed: int) -> dict[str, float]:
    """Noise-prediction MSE at seeded noise and levels, and DDIM-16 actions' MSE against the expert's."""
    g = torch.Generator(device=obs.device).manual_seed(seed)
    t = torch.randint(0, schedule.levels, (len(obs),), generator=g, device=obs.device)
    noise = torch.randn(act.shape, generator=g, device=obs.device)
    loss = F.mse_loss(model(schedule.add_noise(act, noise, t), t, obs), noise).item()
    sampled, _ = Sampler(model, schedule, SamplerConfig(steps=16)).sample(obs, g)
    n = model.cfg.n_action
    return {"heldout_loss": loss, "heldout_action_mse": F.mse_loss(sampled[:, :n], act[:, :n]).item()}


def train_policy(cfg: PolicyTrainConfig, data: list[Path], out: Path, progress: Progress | None = None,
                 command: list[str] | None = None) -> dict[str, Any]:
    """Train, score, write ``out``; the metrics (also stored in the checkpoint's provenance)."""
    cfg.validate()
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    say = progress or (lambda *_: None)

    # 1. data
    demos = load_demos(data, cfg.task)
    train_eps, held_eps = split(demos.episodes, cfg.held_out, cfg.seed)
    norm = Normalizer.fit(np.concatenate([e.states for e in train_eps]))
    mcfg = DiffusionConfig(**{**asdict(cfg.model), "obs_dim": train_eps[0].states.shape[1],
                              "action_dim": train_eps[0].actions.shape[1]})
    obs_np, act_np = windows(train_eps, norm, mcfg.obs_horizon, mcfg.horizon)
    obs, act = torch.from_numpy(obs_np).to(device), torch.from_numpy(act_np).to(device)

    # 2. DDPM training with an EMA
    schedule = NoiseSchedule(mcfg.levels)
    model = Denoiser(mcfg).to(device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = Adam(model.parameters(), lr=cfg.lr)
    g = torch.Generator(device=device).manual_seed(cfg.seed)
    t0, loss_avg = time.perf_counter(), None
    for step in range(cfg.steps):
        idx = torch.randint(0, len(obs), (cfg.batch,), generator=g, device=device)
        t = torch.randint(0, mcfg.levels, (cfg.batch,), generator=g, device=device)
        noise = torch.randn(act[idx].shape, generator=g, device=device)
        loss = F.mse_loss(model(schedule.add_noise(act[idx], noise, t), t, obs[idx]), noise)
        opt.zero_grad()
        loss.backward()
        opt.param_groups[0]["lr"] = learning_rate(step, cfg.steps, cfg.lr)
        opt.step()
        decay = min(cfg.ema, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), model.parameters()):
                pe.lerp_(p, 1 - decay)
            for be, b in zip(ema.buffers(), model.buffers()):
                be.copy_(b)
        loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
        if step % 25 == 0 or step == cfg.steps - 1:
            say("train", step + 1, cfg.steps, {"loss": loss_avg})
    if device.type == "cuda":
        torch.cuda.synchronize()
    train_s = time.perf_counter() - t0

    # 3. held-out scores
    metrics: dict[str, Any] = {"task": demos.task, "env_id": demos.env_id, "train_episodes": len(train_eps),
                               "heldout_episodes": len(held_eps), "train_windows": len(obs), "train_s": train_s,
                               "final_train_loss": loss_avg, "parameters": parameter_count(model),
                               "device": str(device)}
    if held_eps:
        h_obs, h_act = windows(held_eps, norm, mcfg.obs_horizon, mcfg.horizon)
        pick = np.random.default_rng(cfg.seed).permutation(len(h_obs))[:SCORE_WINDOWS]
        metrics.update(_held_out_scores(ema, schedule, torch.from_numpy(h_obs[pick]).to(device),
                                        torch.from_numpy(h_act[pick]).to(device), cfg.seed))

    # 4. what the caches need
    say("sensitivity", 0, 1, {})
    pick = torch.randperm(len(obs), generator=torch.Generator().manual_seed(cfg.seed))[:TABLE_WINDOWS].to(device)
    table = estimate_sensitivity(ema, schedule, obs[pick], act[pick], stride=max(1, mcfg.levels // cfg.eval_steps),
                                 generator=g)
    beta = spectrum_slope(act_np)
    metrics["sea_beta"] = beta

    # 5. the checkpoint, then the rollouts
    provenance = {"data": demos.stores, "task": demos.task, "env_id": demos.env_id,
                  "episodes": {"train": [e.source for e in train_eps], "held_out": [e.source for e in held_eps]},
                  "demo_success_rate": float(np.mean([e.success for e in demos.episodes])),
                  "train": {**asdict(cfg), "model": mcfg.to_dict()}, "command": command or [],
                  "torch": str(torch.__version__), "metrics": metrics}
    ckpt = DiffusionCheckpoint(mcfg, {k: v.detach().cpu() for k, v in ema.state_dict().items()}, norm, beta,
                               table.to("cpu"), provenance)
    save_tensors(out, ckpt.to_dict())
    if cfg.eval_episodes and demos.env_id is not None:
        from agent.policy.diffusion.rollout import rollouts

        policy = DiffusionPolicy(ckpt, SamplerConfig(steps=cfg.eval_steps), cfg.device)
        outcomes = rollouts(policy, demos.env_id, cfg.eval_episodes, seed=cfg.seed,
                            on_episode=lambda o: say("rollouts", o.episode + 1, cfg.eval_episodes, {}))
        metrics["rollout_success"] = float(np.mean([o.success for o in outcomes]))
        metrics["rollout_episodes"] = len(outcomes)
        save_tensors(out, ckpt.to_dict())
    return metrics
