"""Cortical columns behind a thalamic router that reads the sample itself (after TRC², Khadangi 2026).

M small columns, each a whole two-hidden-layer network with its own readout, and a router: one MLP
trunk on the standardised sample with two heads, which column owns the sample and the output itself
(an auxiliary readout that the learner combines with the columns'). A sample is routed to the
columns that hold router mass ``top_p``, at least one and at most ``top_k`` (hybrid top-k ∪ top-p),
and only those columns are computed for it.
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
    columns: int = 4  # M
    top_k: int = 2  # at most this many columns a sample
    top_p: float = 0.9  # the fewest columns holding this much router mass (at least one)
    hidden: int = 96  # per column
    router_hidden: int = 256


class Router(nn.Module):
    """Sample [N, in_dim] → owner logits [N, M] (which column owns it) and auxiliary outputs [N, classes]."""

    def __init__(self, cfg: ColumnConfig) -> None:
        super().__init__()
        h = cfg.router_hidden
        self.trunk = nn.Sequential(nn.Linear(cfg.in_dim, h), nn.ReLU(), nn.Linear(h, h), nn.ReLU())
        self.owner = nn.Linear(h, cfg.columns)
        self.aux = nn.Linear(h, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.trunk(F.layer_norm(x, x.shape[-1:]))  # the pattern matters, not the level
        return self.owner(features), self.aux(features)


def select(owner_logits: torch.Tensor, allowed: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Routing weights [N, M]: among the ``allowed`` columns, the most probable ones until their mass
    reaches ``top_p`` (at least one, at most ``top_k``), their probabilities renormalised."""
    probs = owner_logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    sorted_probs, order = probs.sort(-1, descending=True)
    before = sorted_probs.cumsum(-1) - sorted_probs  # mass of the better columns
    rank = torch.arange(probs.shape[-1], device=probs.device)
    keep = torch.zeros_like(probs, dtype=torch.bool).scatter(-1, order, (before < top_p) & (rank < top_k))
    weights = torch.where(keep, probs, torch.zeros_like(probs))
    return weights / weights.sum(-1, keepdim=True)


class ColumnNet(nn.Module):
    """Columns [M] of ``in → hidden → hidden → outputs`` (ReLU) and their router."""

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

    def column(self, x: torch.Tensor, m: int) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Column ``m`` on x [N, in] → outputs [N, classes] and the input of each of its layers
        (``x``, ``h1``, ``h2``: what its spectral memories sketch)."""
        h1 = torch.relu(x @ self.w1[m] + self.b1[m])
        h2 = torch.relu(h1 @ self.w2[m] + self.b2[m])
        return h2 @ self.w3[m] + self.b3[m], {"x": x, "h1": h1, "h2": h2}

    def forward(self, x: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """x [N, in], routing weights [N, M] → the weighted sum of the routed columns' outputs
        [N, classes]; each column runs only on the samples routed to it."""
        out = x.new_zeros(len(x), self.cfg.n_classes)
        for m in range(self.cfg.columns):
            rows = weights[:, m].nonzero().flatten()
            if len(rows):
                out = out.index_add(0, rows, weights[rows, m, None] * self.column(x[rows], m)[0])
        return out
