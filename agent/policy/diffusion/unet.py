"""The denoiser: Diffusion Policy's 1-D temporal conv U-Net with FiLM conditioning, split in three.

    stem:  h = conv(x_t);  m = h·(1 + γ(c)) + β(c)      c = [embed(t), the observations]
    body:  r = UNet(m, c)                               (all the cost; what step caching reuses)
    head:  ε̂ = conv(mish(norm(h + r)))

The split is TeaCache's (and so SeaCache's and SenCache's): a skipped step still runs the cheap stem
and head on the new x_t, and adds the body's residual ``r`` from the last step that ran it. ``m``,
the FiLM-modulated input, is the proxy SeaCache watches (the counterpart of a DiT's modulated first
block input). ``forward`` runs all three, as training does.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from agent.policy.diffusion.config import DiffusionConfig


def time_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of (possibly fractional) noise levels ``t`` (B,) → (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device, dtype=torch.float32) / (half - 1))
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvBlock(nn.Sequential):
    """Conv1d → GroupNorm → Mish, length kept."""

    def __init__(self, inp: int, out: int, kernel: int, groups: int) -> None:
        super().__init__(nn.Conv1d(inp, out, kernel, padding=kernel // 2), nn.GroupNorm(groups, out), nn.Mish())


class FiLMBlock(nn.Module):
    """Diffusion Policy's conditional residual block: two conv blocks, the first's output scaled and
    shifted per channel (the ``film`` (B, 2·out, 1) the body computes for all its blocks at once)."""

    def __init__(self, inp: int, out: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.out_channels = out
        self.conv1 = ConvBlock(inp, out, kernel, groups)
        self.conv2 = ConvBlock(out, out, kernel, groups)
        self.skip = nn.Conv1d(inp, out, 1) if inp != out else nn.Identity()

    def forward(self, x: torch.Tensor, film: torch.Tensor) -> torch.Tensor:
        scale, shift = film.chunk(2, dim=1)
        return self.conv2(torch.addcmul(shift, self.conv1(x), scale)) + self.skip(x)


class Body(nn.Module):
    """The U-Net: ``blocks`` FiLM blocks a level down (halving the length between levels), in the
    middle, then up, each level joined by the skip of the same length (the full-length one unused, as in
    Diffusion Policy, which has two blocks a level). One linear layer makes every block's FiLM scale and shift (on the CPU, per-layer overhead
    is most of a small network's time)."""

    def __init__(self, width: int, dims: tuple[int, ...], cond_dim: int, kernel: int, groups: int,
                 blocks: int) -> None:
        super().__init__()
        block = lambda i, o: FiLMBlock(i, o, kernel, groups)  # noqa: E731
        ins = (width, *dims[:-1])
        self.down = nn.ModuleList(
            nn.ModuleList([block(i, o), *(block(o, o) for _ in range(blocks - 1)),
                           nn.Conv1d(o, o, 3, stride=2, padding=1) if k < len(dims) - 1 else nn.Identity()])
            for k, (i, o) in enumerate(zip(ins, dims)))
        self.mid = nn.ModuleList([block(dims[-1], dims[-1]) for _ in range(blocks)])
        self.up = nn.ModuleList(
            nn.ModuleList([block(2 * o, i), *(block(i, i) for _ in range(blocks - 1)),
                           nn.ConvTranspose1d(i, i, 4, stride=2, padding=1)])
            for i, o in zip(reversed(dims[:-1]), reversed(dims[1:])))
        self.out = ConvBlock(dims[0], width, kernel, groups)
        self.sizes = [2 * b.out_channels for b in self.modules() if isinstance(b, FiLMBlock)]
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, sum(self.sizes)))

    def forward(self, m: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        films = iter(self.film(cond)[..., None].split(self.sizes, dim=1))
        skips = []
        for *blocks, down in self.down:
            for b in blocks:
                m = b(m, next(films))
            skips.append(m)
            m = down(m)
        for b in self.mid:
            m = b(m, next(films))
        for first, *blocks, up in self.up:
            m = first(torch.cat([m, skips.pop()], dim=1), next(films))
            for b in blocks:
                m = b(m, next(films))
            m = up(m)
        return self.out(m)


class Denoiser(nn.Module):
    """ε̂(x_t, t | observations) over action chunks (B, horizon, action_dim), in stem, body and head."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        cfg.validate()
        self.cfg = cfg
        width = cfg.down_dims[0]
        cond_dim = cfg.time_dim + cfg.obs_dim * cfg.obs_horizon
        self.time = nn.Sequential(nn.Linear(cfg.time_dim, 4 * cfg.time_dim), nn.Mish(),
                                  nn.Linear(4 * cfg.time_dim, cfg.time_dim))
        self.stem = nn.Conv1d(cfg.action_dim, width, cfg.kernel, padding=cfg.kernel // 2)
        self.stem_film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * width))
        self.body = Body(width, cfg.down_dims, cond_dim, cfg.kernel, cfg.groups, cfg.blocks)
        self.head = nn.Sequential(nn.GroupNorm(cfg.groups, width), nn.Mish(), nn.Conv1d(width, cfg.action_dim, 1))

    def time_features(self, t: torch.Tensor) -> torch.Tensor:
        """The embedded noise levels ``t`` (B,) → (B, time_dim)."""
        return self.time(time_embedding(t, self.cfg.time_dim))

    def condition(self, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        """The conditioning vector of noise levels ``t`` (B,) and flattened observations ``obs`` (B, O·S)."""
        return torch.cat([self.time_features(t), obs], dim=-1)

    def enter(self, x: torch.Tensor, cond: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The stem: ``x`` (B, horizon, action_dim) → its features ``h`` and their modulated copy ``m``
        (both (B, width, horizon)); ``m`` is what the body reads and SeaCache's proxy."""
        h = self.stem(x.transpose(1, 2))
        scale, shift = self.stem_film(cond)[..., None].chunk(2, dim=1)
        return h, h * (1 + scale) + shift

    def leave(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """The head: features ``h`` plus the body's residual ``r`` → ε̂ (B, horizon, action_dim)."""
        return self.head(h + r).transpose(1, 2)

    def forward(self, x: torch.Tensor, t: torch.Tensor, obs: torch.Tensor) -> torch.Tensor:
        cond = self.condition(t, obs)
        h, m = self.enter(x, cond)
        return self.leave(h, self.body(m, cond))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())

