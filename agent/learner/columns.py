"""Cortical columns behind a thalamic router (TRC², Khadangi 2026, made causal).

M small columns (each a whole two-hidden-layer network with its own readout) share the input; a router scores a *causal* summary of the stream — an
average of the inputs of completed steps only, never the present one — against learned column
keys, keeps the top k and softmax-weights them. A gain modulated by surprise sharpens routing when
the world stops matching predictions; a load-balance loss pushes a new context toward columns that
have been little used. The routed columns' logits are mixed by the routing weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ColumnConfig:
    """Sizes of the column network and its router."""

    in_dim: int = 64
    n_classes: int = 10
    columns: int = 8  # M
    top_k: int = 2
    hidden: int = 128  # per column
    route_dim: int = 32
    temperature: float = 8.0  # scale of the cosine routing logits


class Router(nn.Module):
    """Causal summary [N, in_dim] → routing weights [N, M] (top-k, softmaxed) and full probabilities."""

    def __init__(self, cfg: ColumnConfig) -> None:
        super().__init__()
        self.k, self.temperature = cfg.top_k, cfg.temperature
        self.query = nn.Linear(cfg.in_dim, cfg.route_dim)
        self.keys = nn.Parameter(torch.randn(cfg.columns, cfg.route_dim))

    def queries(self, summary: torch.Tensor) -> torch.Tensor:
        """Unit query vectors of summaries (standardised first: the pattern matters, not the level)."""
        return F.normalize(self.query(F.layer_norm(summary, summary.shape[-1:])), dim=-1)

    @torch.no_grad()
    def recruit(self, summary: torch.Tensor, free: torch.Tensor, usage: torch.Tensor, similar: float) -> int | None:
        """A context unlike every recruited column's key takes a column: the least-used free one (or
        the least-used of all when none is free) gets the context's query as its key. Returns it."""
        q = self.queries(summary)
        keys = F.normalize(self.keys, dim=-1)
        if (~free).any() and float((keys[~free] @ q).max()) > similar:
            return None
        pool = free if free.any() else torch.ones_like(free)
        m = int(torch.where(pool, usage, torch.inf).argmin())
        self.keys[m] = q * self.keys[m].norm()
        return m

    def forward(self, summary: torch.Tensor, gain: float | torch.Tensor = 1.0) -> tuple[torch.Tensor, ...]:
        """→ routing weights [N, M] (top-k, softmaxed), probabilities over all columns, and the logits."""
        logits = gain * self.temperature * self.queries(summary) @ F.normalize(self.keys, dim=-1).T
        top = logits.topk(self.k, dim=-1)
        weights = torch.zeros_like(logits).scatter(-1, top.indices, top.values.softmax(-1))
        return weights, logits.softmax(-1), logits


class ColumnNet(nn.Module):
    """Columns [M] of ``in → hidden → hidden → classes`` (ReLU), each a whole small network with its
    own readout; the routing weights mix the columns' logits."""

    def __init__(self, cfg: ColumnConfig) -> None:
        super().__init__()
        m, d, h, c = cfg.columns, cfg.in_dim, cfg.hidden, cfg.n_classes
        self.cfg = cfg
        self.router = Router(cfg)
        self.w1 = nn.Parameter(torch.randn(m, d, h) / math.sqrt(d))
        self.b1 = nn.Parameter(torch.zeros(m, h))
        self.w2 = nn.Parameter(torch.randn(m, h, h) / math.sqrt(h))
        self.b2 = nn.Parameter(torch.zeros(m, h))
        self.w3 = nn.Parameter(torch.randn(m, h, c) / math.sqrt(h))
        self.b3 = nn.Parameter(torch.zeros(m, c))

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """x [N, in], routing weights [N, M] → logits [N, classes] and each layer's input, which
        the spectral memories sketch: ``x`` [N, in], ``h1`` and ``h2`` [N, M, hidden]."""
        h1 = torch.relu(torch.einsum("nd,mdh->nmh", x, self.w1) + self.b1)
        h2 = torch.relu(torch.einsum("nmh,mhk->nmk", h1, self.w2) + self.b2)
        out = torch.einsum("nmh,mhc->nmc", h2, self.w3) + self.b3
        return torch.einsum("nm,nmc->nc", weights, out), {"x": x, "h1": h1, "h2": h2}
