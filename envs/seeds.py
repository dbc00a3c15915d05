"""Disjoint seed ranges, so that no evaluation episode is one a policy trained or was shown on.

A run's envs are seeded from its ``--seed`` (at most `MAX_SEED`) upward (env i of task t: seed + t * num_envs + i, a resumed
run past its steps), which stays far below `EVAL_BASE` for any run this runtime makes. Evaluation
episodes (`thalamus eval`, and `thalamus replay`'s rollouts) draw from [EVAL_BASE, DEMO_BASE);
a learner's practice episodes (trc's, in the imitation benchmarks) from [PRACTICE_BASE, EVAL_BASE);
recorded expert demonstrations (`thalamus record --expert`) from DEMO_BASE up.
"""

from __future__ import annotations

PRACTICE_BASE = 900_000_000
EVAL_BASE = 1_000_000_000
DEMO_BASE = 2_000_000_000
MAX_SEED = 9_999  # the largest --seed: keeps each range below the next, and every seed below 2**32


def eval_seed(seed: int, episode: int) -> int:
    """The env seed of evaluation episode ``episode`` under ``--seed seed``."""
    return EVAL_BASE + seed * 100_000 + episode


def demo_seed(seed: int, episode: int) -> int:
    """The env seed of recorded demonstration ``episode`` under ``--seed seed``."""
    return DEMO_BASE + seed * 100_000 + episode


def practice_seed(seed: int, episode: int) -> int:
    """The env seed of practice episode ``episode`` under ``--seed seed``: a training seed, never evaluated on."""
    return PRACTICE_BASE + seed * 10_000 + episode  # up to 10,000 episodes a seed: below EVAL_BASE for any --seed
