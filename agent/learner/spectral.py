"""Spectral memory: a streaming low-rank sketch of a layer's inputs that protects what was learned.

Each protected layer keeps the running second moment of its inputs since the last consolidation
(a streaming sketch: a D × D matrix updated by one matmul per step, exact in the second moment).
At consolidation (a task boundary) the sketch's top directions, beyond what the protected basis
already spans, join the basis until it captures ``threshold`` of the energy (GPM, Saha et al. 2021).
Gradients of the layer's weights are then projected away from the basis, scaled by the
consolidation strength ``c``: ``g ← g − c · g U Uᵀ`` (c = 1: old inputs' outputs cannot move).
The residual energy of new inputs outside the basis, ``‖x − UUᵀx‖² / ‖x‖²``, is the novelty signal.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class SpectralMemory:
    """The protected basis ``U`` [D, r] of one layer's input space and the sketch since consolidation."""

    def __init__(self, dim: int, threshold: float = 0.97, device: str | torch.device = "cpu") -> None:
        self.dim, self.threshold, self.device = dim, threshold, torch.device(device)
        self.basis = torch.zeros(dim, 0, device=self.device)
        self.singular_values = torch.zeros(0, device=self.device)
        self.sketch = torch.zeros(dim, dim, device=self.device)
        self.updates = 0
        self.energy_captured = 0.0

    def observe(self, inputs: torch.Tensor, weights: torch.Tensor | None = None) -> None:
        """Add a batch of inputs [N, D] (each row weighted, e.g. by how much it was routed here)."""
        x = inputs.detach()
        if weights is not None:
            x = x * weights.detach().sqrt()[:, None]
        self.sketch += x.T @ x
        self.updates += 1

    def consolidate(self) -> None:
        """Grow the basis with the sketch's new directions (energy threshold), then reset the sketch."""
        total = torch.trace(self.sketch)
        if total <= 0:
            return
        u = self.basis
        outside = torch.eye(self.dim, device=self.device) - u @ u.T  # the part of the input space not yet protected
        residual = outside @ self.sketch @ outside
        inside = total - torch.trace(residual)
        evals, evecs = _eigh(residual)
        need = self.threshold * total - inside
        take = int((torch.cumsum(evals, 0) < need).sum()) + 1 if need > 0 else 0
        take = min(take, self.dim - u.shape[1])
        if take > 0:
            new = evecs[:, :take]
            new = new - u @ (u.T @ new)  # numerically orthogonal to what is kept
            q, _ = torch.linalg.qr(new)
            self.basis = torch.cat([u, q], 1)
            self.singular_values = torch.cat([self.singular_values, evals[:take].sqrt()])
        self.energy_captured = float((inside + evals[:take].sum()) / total)
        self.sketch.zero_()

    def project(self, grad: torch.Tensor, strength: float) -> torch.Tensor:
        """A weight gradient [D_in, D_out] (rows = input directions) with the protected part scaled away."""
        if self.basis.shape[1] == 0 or strength == 0:
            return grad
        u = self.basis
        return grad - strength * (u @ (u.T @ grad))

    def novelty(self, inputs: torch.Tensor) -> torch.Tensor:
        """Per row, the fraction of its energy outside the protected basis (1: all new)."""
        x = inputs.detach()
        inside = (x @ self.basis).pow(2).sum(-1)
        return 1 - inside / x.pow(2).sum(-1).clamp_min(1e-12)

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        arrays = {"basis": self.basis.cpu().numpy().astype(np.float32),
                  "singular_values": self.singular_values.cpu().numpy().astype(np.float32),
                  "sketch": self.sketch.cpu().numpy().astype(np.float32)}
        return arrays, {"rank": int(self.basis.shape[1]), "dim": self.dim, "threshold": self.threshold,
                        "energy_captured": self.energy_captured, "updates": self.updates}

    def load_arrays(self, arrays: dict[str, np.ndarray], attrs: dict) -> None:
        self.basis = torch.from_numpy(np.array(arrays["basis"], np.float32)).to(self.device)
        self.singular_values = torch.from_numpy(np.array(arrays["singular_values"], np.float32)).to(self.device)
        self.sketch = torch.from_numpy(np.array(arrays["sketch"], np.float32)).to(self.device)
        self.dim, self.threshold = int(attrs["dim"]), float(attrs["threshold"])
        self.energy_captured, self.updates = float(attrs["energy_captured"]), int(attrs["updates"])


class ColumnSpectra:
    """The spectral memories of a column network, one per column and layer (the inputs of its
    three weight matrices). A column learns one task at a time, so it is observed and protected alone."""

    LAYERS = (("w1", "x"), ("w2", "h1"), ("w3", "h2"))  # weight, the activations it reads

    def __init__(self, cfg, threshold: float, device: str | torch.device = "cpu") -> None:
        dims = {"x": cfg.in_dim, "h1": cfg.hidden, "h2": cfg.hidden}
        self.memories = {act: [SpectralMemory(dims[act], threshold, device) for _ in range(cfg.columns)]
                         for _, act in self.LAYERS}

    def columns(self) -> list[SpectralMemory]:
        return [s for mems in self.memories.values() for s in mems]

    @torch.no_grad()
    def observe(self, m: int, acts: dict[str, torch.Tensor]) -> None:
        """Add a step's inputs of column ``m``'s three layers to its sketches."""
        for act, mems in self.memories.items():
            mems[m].observe(acts[act])

    @torch.no_grad()
    def project(self, net: nn.Module, m: int, strength: float) -> None:
        """Scale the protected part out of column ``m``'s weight gradients."""
        for weight, act in self.LAYERS:
            grad = getattr(net, weight).grad
            grad[m] = self.memories[act][m].project(grad[m], strength)

    def novelty(self, x: torch.Tensor) -> torch.Tensor:
        """Per column, the mean novelty of inputs x [N, in] to its first layer: how much room it has left."""
        return torch.stack([mem.novelty(x).mean() for mem in self.memories["x"]])

    def consolidate(self) -> None:
        for s in self.columns():
            s.consolidate()


def _eigh(sym: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (descending, ≥ 0) and vectors of a PSD matrix, in float64 with a small jitter:
    a float32 ``eigh`` fails to converge on the rank-deficient sketches a single task leaves."""
    s = sym.double()
    s = (s + s.T) / 2 + 1e-9 * float(torch.trace(s)) / len(s) * torch.eye(len(s), dtype=s.dtype, device=s.device)
    evals, evecs = torch.linalg.eigh(s)
    return evals.flip(0).clamp_min(0).to(sym.dtype), evecs.flip(1).to(sym.dtype)
