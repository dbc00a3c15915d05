"""The noise schedule: DDPM's forward process over 100 levels and the two reverse steps, DDPM and DDIM.

The betas are the squared-cosine schedule (Nichol & Dhariwal 2021, capped at 0.999) that Diffusion
Policy trains with; the network predicts the noise ε. Both reverse steps clip the implied clean
chunk to the action range [-1, 1], as Diffusion Policy's samplers do (``clip_sample``). DDIM's N
steps are spaced "trailing" (Lin et al. 2024): the first step starts at the noisiest level 99, so
few steps still begin from pure noise.
"""

from __future__ import annotations

import math

import torch


class NoiseSchedule:
    """ᾱ_t for t = 0..levels-1 and the reverse steps that use it."""

    def __init__(self, levels: int = 100) -> None:
        steps = torch.arange(levels + 1, dtype=torch.float64) / levels
        f = torch.cos((steps + 0.008) / 1.008 * math.pi / 2) ** 2
        betas = (1 - f[1:] / f[:-1]).clamp(max=0.999)
        self.levels = levels
        self.betas = betas.float()
        self.alphas_cumprod = torch.cumprod(1 - betas, 0).float()

    def alpha_bar(self, t: int) -> float:
        """ᾱ_t; t = -1 is the clean end (1.0)."""
        return 1.0 if t < 0 else float(self.alphas_cumprod[t])

    def add_noise(self, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """x_t = √ᾱ_t·x0 + √(1−ᾱ_t)·ε, per sample level ``t`` (B,)."""
        ab = self.alphas_cumprod.to(x0.device)[t].view(-1, *([1] * (x0.dim() - 1)))
        return ab.sqrt() * x0 + (1 - ab).sqrt() * noise

    def ddim_timesteps(self, n: int) -> list[int]:
        """N levels from 99 down, evenly spaced ("trailing"); n = levels gives every level."""
        if not 1 <= n <= self.levels:
            raise ValueError(f"DDIM steps must be 1..{self.levels}, got {n}")
        return [round(self.levels - k * self.levels / n) - 1 for k in range(n)]

    def clean(self, x: torch.Tensor, eps: torch.Tensor, t: int) -> torch.Tensor:
        """The clean chunk x̂0 that ``x`` at level ``t`` and the predicted noise imply, clipped to [-1, 1]."""
        ab = self.alpha_bar(t)
        return torch.sub(x, eps, alpha=math.sqrt(1 - ab)).mul_(1 / math.sqrt(ab)).clamp_(-1, 1)

    def ddim_step(self, x: torch.Tensor, eps: torch.Tensor, t: int, t_prev: int) -> torch.Tensor:
        """Deterministic DDIM (η = 0) from level ``t`` to ``t_prev`` (-1: the end):
        ``√ᾱ' x̂0 + √(1−ᾱ') ε̂'`` with ε̂' the noise the clipped x̂0 implies, ``(x − √ᾱ x̂0)/√(1−ᾱ)``,
        folded into two coefficients (each op costs tens of µs on a CPU at batch 1)."""
        x0 = self.clean(x, eps, t)
        ab, ab_prev = self.alpha_bar(t), self.alpha_bar(t_prev)
        keep = math.sqrt((1 - ab_prev) / (1 - ab))
        return torch.add(x * keep, x0, alpha=math.sqrt(ab_prev) - keep * math.sqrt(ab))

    def ddpm_step(self, x: torch.Tensor, eps: torch.Tensor, t: int, generator: torch.Generator | None) -> torch.Tensor:
        """Ancestral DDPM from level ``t`` to ``t - 1``, with the posterior's variance ("fixed small")."""
        x0 = self.clean(x, eps, t)
        ab, ab_prev, beta = self.alpha_bar(t), self.alpha_bar(t - 1), float(self.betas[t])
        mean = (math.sqrt(ab_prev) * beta / (1 - ab)) * x0 + (math.sqrt(1 - beta) * (1 - ab_prev) / (1 - ab)) * x
        if t == 0:
            return mean
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        return mean + math.sqrt(beta * (1 - ab_prev) / (1 - ab)) * z
