"""Forgetting, measured: the task × task matrix R and what follows from it.

``R[i][j]`` is the performance on task ``j`` after learning tasks ``0..i`` (higher is better; pass
``higher_is_better=False`` for losses). Definitions (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018):

- average accuracy: mean of the last row, ``mean_j R[T-1][j]``;
- backward transfer: ``mean_{j<T-1} (R[T-1][j] − R[j][j])`` (negative: forgetting);
- forgetting: ``mean_{j<T-1} max(0, max_{i<T-1} R[i][j] − R[T-1][j])`` (best-so-far minus final);
- area under the forgetting curve: the mean over boundaries ``i ≥ 1`` of the forgetting measured
  after task ``i`` (over tasks ``j < i``), so a method that forgets early and recovers still pays.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np


@dataclass
class ForgettingReport:
    """Summary numbers of a matrix R (in R's units)."""

    matrix: list[list[float]]
    average: float
    backward_transfer: float
    forgetting: float
    forgetting_auc: float

    def to_dict(self) -> dict:
        return asdict(self)


def _forgetting_after(r: np.ndarray, i: int) -> float:
    """Mean over tasks j < i of max(0, best R[k][j] for j ≤ k < i, minus R[i][j])."""
    if i == 0:
        return 0.0
    return float(np.mean([max(0.0, r[j:i, j].max() - r[i, j]) for j in range(i)]))


def forgetting_report(matrix: np.ndarray | list, higher_is_better: bool = True) -> ForgettingReport:
    """All the numbers of a square matrix R[i][j] (NaN-free, tasks in the order learned)."""
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square matrix, got shape {r.shape}")
    signed = r if higher_is_better else -r
    t = r.shape[0]
    bwt = float(np.mean([signed[-1, j] - signed[j, j] for j in range(t - 1)])) if t > 1 else 0.0
    curve = [_forgetting_after(signed, i) for i in range(1, t)]
    return ForgettingReport(matrix=r.tolist(), average=float(r[-1].mean()), backward_transfer=bwt,
                            forgetting=_forgetting_after(signed, t - 1),
                            forgetting_auc=float(np.mean(curve)) if curve else 0.0)
