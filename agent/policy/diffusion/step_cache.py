"""Step caching: which samples of a batch run the denoiser's body at this sampling step, and which
reuse the body's residual from the last step that ran it.

One interface (:class:`StepCache`: ``start`` a chunk, then ``refresh`` once per step → a bool mask
over the batch), three rules, each decided per sample (an env's chunk never waits on another's):

- :class:`NoCache`: every step runs the body (plain DDIM / DDPM).
- :class:`SeaCache` (Chung et al., CVPR 2026, arXiv 2602.18993): watch the body's input (the stem's
  FiLM-modulated features), filtered along the chunk's time axis by the spectral-evolution-aware gain
  of the current noise level — the Wiener gain ``a·S(f) / (a²·S(f) + b²)`` of a clean power-law
  spectrum ``S(f) = 1/(|f|^β + ε)`` under ``x_t = a·x0 + b·noise`` (VP: a = √ᾱ_t, b = √(1−ᾱ_t)),
  normalised to unit mean. Add up the relative L1 change of the filtered input from step to step; run
  the body once the sum reaches δ, then start the sum again. β is fitted to the demonstrations' action
  spectra at training time (`agent.policy.diffusion.train`).
- :class:`SenCache` (Haghighi & Alahi, CVPR 2026, arXiv 2602.24208): the body's output moves by at most
  about ``‖J_x‖·‖x_t − x*‖ + ‖J_t‖·|t − t*|`` from the last refreshed point (x*, t*); with the norms
  measured offline per noise level (:class:`Sensitivity`, from training data), skip while that bound,
  relative to the body output's typical norm at the level, stays under ε and fewer than K steps in a
  row were skipped.

The first and the last step of a chunk always run the body (both papers do). A cache's state lives in
tensors made at the first step and updated in place after it, so that CUDA graphs of later steps
(`agent.policy.diffusion.cuda_graphs`) all read and write the same memory.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch

from agent.policy.diffusion.noise import NoiseSchedule

CACHES = ("none", "seacache", "sencache")
# δ and ε, chosen on reach-v3's demonstrations for about 6 body evaluations of DDIM 16's 16
# (SeaCache's README uses δ = 0.1 for 2× on Wan2.1's 50 steps; a 16-step chunk needs more to halve)
DEFAULT_THRESHOLD = {"seacache": 0.5, "sencache": 0.3}
DEFAULT_MAX_SKIPS = 3  # SenCache's K; the paper's 10 is for 50-step video samplers, ours run 16


class StepCache(Protocol):
    """Decides, step by step, which samples run the body."""

    def start(self, batch: int, steps: int) -> None:
        """A new chunk of ``steps`` sampling steps for ``batch`` samples: forget the last one."""

    def refresh(self, i: int, t: int, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        """Step ``i`` (at noise level ``t``) of the chunk, with the noisy chunk ``x`` and the body's input
        ``proxy``: a bool mask (B,), True where the body must run."""


class NoCache:
    """Every step runs the body."""

    def start(self, batch: int, steps: int) -> None:
        """Nothing to forget."""

    def refresh(self, i: int, t: int, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)


def sea_gain(length: int, a: float, b: float, beta: float, eps: float = 1e-3) -> torch.Tensor:
    """The SEA filter's gain over the rfft bins of a length-``length`` sequence, unit mean."""
    f = torch.fft.rfftfreq(length, dtype=torch.float64)
    s = 1.0 / (f.abs() ** beta + eps)
    g = a * s / (a * a * s + b * b)
    return (g / g.mean()).float()


def sea_filter(x: torch.Tensor, gain: torch.Tensor) -> torch.Tensor:
    """``x`` (..., T) filtered along its last axis by ``gain`` (T//2 + 1 bins)."""
    return torch.fft.irfft(torch.fft.rfft(x, dim=-1) * gain.to(x.device), n=x.shape[-1], dim=-1)


class SeaCache:
    """SeaCache's rule: accumulate the SEA-filtered input's relative L1 change; run the body at δ."""

    def __init__(self, schedule: NoiseSchedule, delta: float, beta: float) -> None:
        self.schedule, self.delta, self.beta = schedule, delta, beta
        self._filters: dict[tuple[int, int, torch.device], torch.Tensor] = {}

    def start(self, batch: int, steps: int) -> None:
        self.steps = steps
        self.prev: torch.Tensor | None = None  # the last step's filtered input (B, C·T)
        self.prev_l1: torch.Tensor | None = None  # and its L1 norm
        self.acc: torch.Tensor | None = None

    def _filter(self, t: int, length: int, device: torch.device) -> torch.Tensor:
        """The SEA filter of level ``t`` as a (T, T) matrix (rows: the filtered unit vectors), so that
        filtering is one matmul instead of an FFT, a product and an inverse FFT."""
        key = (t, length, device)
        if key not in self._filters:
            ab = self.schedule.alpha_bar(t)
            self._filters[key] = sea_filter(torch.eye(length), sea_gain(length, ab ** 0.5, (1 - ab) ** 0.5,
                                                                          self.beta)).to(device)
        return self._filters[key]

    def refresh(self, i: int, t: int, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        filtered = (proxy @ self._filter(t, proxy.shape[-1], proxy.device)).flatten(1)
        if self.prev is None or self.prev_l1 is None or self.acc is None:
            self.prev, self.prev_l1 = filtered.clone(), filtered.abs().sum(1)
            self.acc = torch.zeros(filtered.shape[0], device=x.device)
            return torch.ones(filtered.shape[0], dtype=torch.bool, device=x.device)
        self.acc += (filtered - self.prev).abs_().sum(1).div_(self.prev_l1.clamp_min(1e-12))
        run = self.acc >= self.delta
        if i == self.steps - 1:
            run.fill_(True)
        self.acc.masked_fill_(run, 0.0)
        self.prev.copy_(filtered)
        torch.sum(filtered.abs_(), 1, out=self.prev_l1)
        return run


@dataclass(frozen=True)
class Sensitivity:
    """SenCache's offline table, one entry per noise level 0..levels-1 (see `estimate_sensitivity`)."""

    j_x: torch.Tensor  # ‖∂r/∂x_t‖ along a sampler step, r the body's output
    j_t: torch.Tensor  # ‖∂r/∂t‖ per noise level
    r_norm: torch.Tensor  # the body output's mean L2 norm (the error's scale)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"j_x": self.j_x, "j_t": self.j_t, "r_norm": self.r_norm}

    def to(self, device: str | torch.device) -> Sensitivity:
        return Sensitivity(self.j_x.to(device), self.j_t.to(device), self.r_norm.to(device))

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> Sensitivity:
        return cls(d["j_x"].float(), d["j_t"].float(), d["r_norm"].float())


class SenCache:
    """SenCache's rule: skip while J_x·‖x − x*‖ + J_t·|t − t*| < ε·‖r‖ and under K skips in a row."""

    def __init__(self, table: Sensitivity, eps: float, max_skips: int = DEFAULT_MAX_SKIPS) -> None:
        self.max_skips = max_skips
        # plain floats: a lookup per step, not a tensor op
        self.j_x, self.j_t = table.j_x.tolist(), table.j_t.tolist()
        self.limit = (eps * table.r_norm).tolist()

    def start(self, batch: int, steps: int) -> None:
        self.steps = steps
        self.x_ref: torch.Tensor | None = None  # the noisy chunk where each sample last ran the body
        self.t_ref: torch.Tensor | None = None  # and its noise level
        self.skips: torch.Tensor | None = None  # steps skipped in a row

    def refresh(self, i: int, t: int, x: torch.Tensor, proxy: torch.Tensor) -> torch.Tensor:
        if self.x_ref is None or self.t_ref is None or self.skips is None:
            self.x_ref = x.clone()
            self.t_ref = torch.full((x.shape[0],), float(t), device=x.device)
            self.skips = torch.zeros(x.shape[0], dtype=torch.long, device=x.device)
            return torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
        err = torch.linalg.vector_norm((x - self.x_ref).flatten(1), dim=1).mul_(self.j_x[t])
        err.add_((self.t_ref - t).abs_(), alpha=self.j_t[t])
        run = (err >= self.limit[t]).logical_or_(self.skips >= self.max_skips)
        if i == self.steps - 1:
            run.fill_(True)
        self.skips.add_(1).masked_fill_(run, 0)
        self.x_ref.copy_(torch.where(run[:, None, None], x, self.x_ref))
        self.t_ref.masked_fill_(run, float(t))
        return run
