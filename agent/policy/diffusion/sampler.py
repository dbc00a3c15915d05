"""The sampling loop: pure noise → an action chunk, in DDPM's or DDIM's steps, with a step cache.

    >>> sampler = Sampler(model, NoiseSchedule(100), SamplerConfig(method="ddim", steps=16, cache="seacache"),
    ...                   beta=2.0)
    >>> actions, nfe = sampler.sample(obs, generator)   # (B, horizon, action_dim), body runs per sample

Every step runs the denoiser's cheap stem and head on the current chunk; the body runs only for the
samples the cache says to refresh (on a subset of the batch when some reuse), and the others add the
residual it gave them last. With ``cache="none"`` the loop is plain DDIM/DDPM, bit for bit the same
as calling the whole denoiser each step (a test holds it to that). On a GPU, DDIM runs as CUDA graphs
(`agent.policy.diffusion.cuda_graphs`), recorded once per batch size (rounded up to a power of two,
padded with copies of the first row) and run in full fp32: the first step, from level 99, multiplies
the network's error by ~1/√ᾱ₉₉ ≈ 1,300 before clipping, and TF32 convolutions would make a chunk
depend on which kernels cuDNN picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agent.policy.diffusion.cuda_graphs import GraphedSampler
from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.step_cache import (
    CACHES, DEFAULT_MAX_SKIPS, DEFAULT_THRESHOLD, NoCache, SeaCache, SenCache, Sensitivity, StepCache,
)
from agent.policy.diffusion.unet import Denoiser

METHODS = ("ddim", "ddpm")


@dataclass(frozen=True)
class SamplerConfig:
    """How a chunk is sampled: the solver, its steps, and the step cache with its threshold."""

    method: str = "ddim"  # ddim (deterministic, `steps` levels) or ddpm (ancestral, every level)
    steps: int = 16  # DDIM steps (DDPM takes every training level)
    cache: str = "none"  # none, seacache or sencache
    threshold: float | None = None  # SeaCache's δ or SenCache's ε (None: DEFAULT_THRESHOLD)
    max_skips: int = DEFAULT_MAX_SKIPS  # SenCache's K

    def validate(self, levels: int) -> None:
        """ValueError (one line) for settings no sampler takes."""
        if self.method not in METHODS:
            raise ValueError(f"sampling method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.method == "ddim" and not 1 <= self.steps <= levels:
            raise ValueError(f"DDIM steps must be 1..{levels} (the levels the policy was trained on), got {self.steps}")
        if self.cache not in CACHES:
            raise ValueError(f"--step-cache must be one of {', '.join(CACHES)}, got {self.cache!r}")
        if self.threshold is not None and not self.threshold > 0:
            raise ValueError(f"--cache-threshold must be positive, got {self.threshold}")
        if self.threshold is not None and self.cache == "none":
            raise ValueError("--cache-threshold needs a step cache: add --step-cache seacache or sencache")
        if self.max_skips < 1:
            raise ValueError(f"the most steps skipped in a row must be at least 1, got {self.max_skips}")

    @property
    def name(self) -> str:
        """E.g. ``ddim16+seacache`` (the bench's names)."""
        base = f"ddim{self.steps}" if self.method == "ddim" else "ddpm"
        return base if self.cache == "none" else f"{base}+{self.cache}"


class Sampler:
    """Samples chunks from ``model`` under ``cfg``; ``beta`` (SeaCache's spectrum slope) and ``table``
    (SenCache's sensitivities) come from the checkpoint."""

    def __init__(self, model: Denoiser, schedule: NoiseSchedule, cfg: SamplerConfig, beta: float = 2.0,
                 table: Sensitivity | None = None, graphs: bool = True) -> None:
        cfg.validate(schedule.levels)
        self.model, self.schedule, self.cfg = model, schedule, cfg
        self.beta, self.table, self.graphs = beta, table, graphs
        self.timesteps = (list(range(schedule.levels - 1, -1, -1)) if cfg.method == "ddpm"
                          else schedule.ddim_timesteps(cfg.steps))
        self.cache = make_cache(cfg, schedule, beta, table)
        self._graphed: dict[int, GraphedSampler] = {}  # padded batch size → its graphs
        self._time: dict[tuple[int, int, torch.device], torch.Tensor] = {}  # (level, batch, device) → time features

    def _time_features(self, t: int, batch: int, device: torch.device) -> torch.Tensor:
        """The embedded level ``t`` for a batch, computed as the whole denoiser would (so equal to the
        bit), once per level and batch size: it is the same at every chunk."""
        key = (t, batch, device)
        if key not in self._time:
            if len(self._time) > 4 * len(self.timesteps):
                self._time.clear()
            self._time[key] = self.model.time_features(torch.full((batch,), t, device=device))
        return self._time[key]

    @torch.inference_mode()
    def sample(self, obs: torch.Tensor, generator: torch.Generator | None = None,
               noise: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Chunks for flattened observation windows ``obs`` (B, obs_horizon·obs_dim), in normalised
        action units, and how many times the body ran for each (B,)."""
        cfg = self.model.cfg
        x = noise if noise is not None else torch.randn(
            (obs.shape[0], cfg.horizon, cfg.action_dim), generator=generator, device=obs.device)
        if not obs.is_cuda:
            return self._sample_eager(obs, x, generator)
        with torch.backends.cudnn.flags(enabled=True, allow_tf32=False):
            if self.graphs and self.cfg.method == "ddim":
                return self._sample_graphed(obs, x)
            return self._sample_eager(obs, x, generator)

    def _sample_eager(self, obs: torch.Tensor, x: torch.Tensor,
                      generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        model, batch, ts = self.model, obs.shape[0], self.timesteps
        self.cache.start(batch, len(ts))
        residual: torch.Tensor | None = None
        nfe = torch.zeros(batch, dtype=torch.long, device=obs.device)
        for i, t in enumerate(ts):
            cond = torch.cat([self._time_features(t, batch, obs.device), obs], dim=-1)
            h, m = model.enter(x, cond)
            run = self.cache.refresh(i, t, x, m)
            if residual is None or bool(run.all()):
                residual = model.body(m, cond)
            elif bool(run.any()):
                idx = run.nonzero().squeeze(1)
                residual = residual.index_copy(0, idx, model.body(m[idx], cond[idx]))
            nfe += run
            eps = model.leave(h, residual)
            if self.cfg.method == "ddpm":
                x = self.schedule.ddpm_step(x, eps, t, generator)
            else:
                x = self.schedule.ddim_step(x, eps, t, ts[i + 1] if i + 1 < len(ts) else -1)
        return x, nfe

    def _sample_graphed(self, obs: torch.Tensor, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``sample`` through the CUDA graphs of the batch rounded up to a power of two."""
        batch = obs.shape[0]
        padded = 1 << (batch - 1).bit_length()
        if padded not in self._graphed:
            times = [self._time_features(t, padded, obs.device) for t in self.timesteps]
            cache = make_cache(self.cfg, self.schedule, self.beta, self.table)
            self._graphed[padded] = GraphedSampler(self.model, self.schedule, self.timesteps, times, cache, padded)
        pad = padded - batch
        if pad:
            obs = torch.cat([obs, obs[:1].expand(pad, -1)])
            x = torch.cat([x, x[:1].expand(pad, -1, -1)])
        chunk, nfe = self._graphed[padded].sample(obs, x)
        return chunk[:batch], nfe[:batch]


def make_cache(cfg: SamplerConfig, schedule: NoiseSchedule, beta: float, table: Sensitivity | None) -> StepCache:
    """The step cache ``cfg`` names; ValueError for SenCache without a sensitivity table."""
    if cfg.cache == "seacache":
        return SeaCache(schedule, cfg.threshold or DEFAULT_THRESHOLD["seacache"], beta)
    if cfg.cache == "sencache":
        if table is None:
            raise ValueError("--step-cache sencache needs the sensitivity table `thalamus train policy` stores; "
                             "this checkpoint has none")
        return SenCache(table, cfg.threshold or DEFAULT_THRESHOLD["sencache"], cfg.max_skips)
    return NoCache()
