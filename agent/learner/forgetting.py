"""Forgetting, measured: the task × task matrix R and what follows from it.

``R[i][j]`` is the performance on task ``j`` after learning tasks ``0..i`` (higher is better).
Definitions (Lopez-Paz & Ranzato 2017; Chaudhry et al. 2018):

- average accuracy: mean of the last row, ``mean_j R[T-1][j]``;
- backward transfer: ``mean_{j<T-1} (R[T-1][j] − R[j][j])`` (negative: forgetting);
- forgetting: ``mean_{j<T-1} max(0, max_{i<T-1} R[i][j] − R[T-1][j])`` (best-so-far minus final);
- area under the forgetting curve: the mean over boundaries ``i ≥ 1`` of the forgetting measured
  after task ``i`` (over tasks ``j < i``), so a method that forgets early and recovers still pays.

Continual World's (Wołczyk et al. 2021, arXiv 2105.10919; its `results_processing/tables.py`):

- performance: the same mean of the last row;
- forgetting of task ``j``: ``R[j][j] − R[T-1][j]``, its score right after its own training minus
  its final score, not clipped (`task_forgetting`); averaged here over the ``T-1`` tasks that can
  forget (Continual World's code averages over all ``T``, the last one's 0 included);
- forward transfer of task ``j``: ``(AUC − AUC_ref) / (1 − AUC_ref)``, the area under task ``j``'s
  success curve while it trained in the sequence against the same in a run of task ``j`` alone
  (`normalized_transfer`; the areas: `success_auc`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

AUC_SPANS = 10  # a task's training is cut into this many equal spans for its success curve


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


def forgetting_report(matrix: np.ndarray | list) -> ForgettingReport:
    """All the numbers of a square matrix R[i][j] (NaN-free, tasks in the order learned)."""
    r = np.asarray(matrix, dtype=np.float64)
    if r.ndim != 2 or r.shape[0] != r.shape[1] or r.shape[0] == 0:
        raise ValueError(f"R must be a non-empty square matrix, got shape {r.shape}")
    t = r.shape[0]
    bwt = float(np.mean([r[-1, j] - r[j, j] for j in range(t - 1)])) if t > 1 else 0.0
    curve = [_forgetting_after(r, i) for i in range(1, t)]
    return ForgettingReport(matrix=r.tolist(), average=float(r[-1].mean()), backward_transfer=bwt,
                            forgetting=_forgetting_after(r, t - 1),
                            forgetting_auc=float(np.mean(curve)) if curve else 0.0)


def task_forgetting(matrix: np.ndarray | list) -> list[float]:
    """Continual World's forgetting of each task: ``R[j][j] − R[T-1][j]`` (the last task's is 0).

    >>> task_forgetting([[0.9, 0.0], [0.5, 0.8]])
    [0.4, 0.0]
    """
    r = np.asarray(matrix, dtype=np.float64)
    return [float(r[j, j] - r[-1, j]) for j in range(len(r))]


def success_auc(successes: np.ndarray, ends: np.ndarray, total: int, spans: int = AUC_SPANS) -> float | None:
    """The area under a success curve, scaled to [0, 1]: the mean over ``spans`` equal spans of
    training of the success rate of the episodes that ended in each (spans where none ended are
    left out; None if no episode ended). Continual World evaluates at evenly spaced steps and
    averages; equal spans weigh each stretch of training alike, where a plain mean over episodes
    would favour stretches of short (successful) episodes.

    ``successes``: bool [E], each finished episode's success; ``ends``: int [E], the step at which
    each ended, counted from the start of training, of ``total`` steps in all.

    >>> success_auc(np.array([False, False, True, True, True]), np.array([10, 20, 80, 85, 90]), 100, spans=2)
    0.5
    """
    if not len(successes):
        return None
    span = (np.asarray(ends, np.int64) * spans - 1) // total  # step n of total falls in span ⌈n·spans/total⌉ − 1
    rates = [float(np.mean(successes[span == s])) for s in range(spans) if (span == s).any()]
    return float(np.mean(rates))


def normalized_transfer(auc: float, reference_auc: float) -> float | None:
    """Continual World's forward transfer of one task, ``(AUC − AUC_ref) / (1 − AUC_ref)``: 1 if the
    task was solved at once in the sequence, 0 if no faster than alone; None when the reference
    succeeded throughout (AUC_ref = 1: nothing left to gain).

    >>> normalized_transfer(0.75, 0.5)
    0.5
    """
    if reference_auc >= 1.0:
        return None
    return (auc - reference_auc) / (1.0 - reference_auc)
