"""scikit-learn's digits (1,797 8×8 images, shipped inside the package) as continual-learning tasks.

One fixed stratified 80/20 split (``random_state=0``: 1,437 train, 360 test), pixels scaled to
[0, 1]. ``split-digits``: 5 tasks of 2 classes ({0,1}, {2,3}, …), one 10-way head; class-incremental
(no task id at test time). ``split-digits-task``: the same stream, scored with the task's 2 classes
only (task-incremental). ``permuted-digits``: 10 tasks of all 10 classes, task 0 the identity and
tasks 1–9 each a fixed pixel permutation (seed 1234, the same for every run seed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DIGIT_SEQUENCES = ("split-digits", "split-digits-task", "permuted-digits")
PERMUTATION_SEED = 1234


@dataclass(frozen=True)
class DigitsTask:
    """One task: float32 images [N, 64] in [0, 1], int64 labels, and the classes it has."""

    name: str
    train_x: np.ndarray
    train_y: np.ndarray
    test_x: np.ndarray
    test_y: np.ndarray
    classes: tuple[int, ...]


def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    y = data.target.astype(np.int64)
    return tuple(train_test_split(x, y, test_size=0.2, stratify=y, random_state=0))


def digits_tasks(sequence: str) -> list[DigitsTask]:
    """The tasks of ``sequence`` (one of ``DIGIT_SEQUENCES``), in the order they are learned."""
    if sequence not in DIGIT_SEQUENCES:
        raise ValueError(f"unknown digits sequence {sequence!r}; choose one of: {', '.join(DIGIT_SEQUENCES)}")
    train_x, test_x, train_y, test_y = _split()
    if sequence == "permuted-digits":
        rng = np.random.default_rng(PERMUTATION_SEED)
        perms = [np.arange(64)] + [rng.permutation(64) for _ in range(9)]
        return [DigitsTask(f"permutation {i}", train_x[:, p], train_y, test_x[:, p], test_y, tuple(range(10)))
                for i, p in enumerate(perms)]
    tasks = []
    for t in range(5):
        classes = (2 * t, 2 * t + 1)
        tr, te = np.isin(train_y, classes), np.isin(test_y, classes)
        tasks.append(DigitsTask(f"digits {classes[0]} and {classes[1]}", train_x[tr], train_y[tr],
                                test_x[te], test_y[te], classes))
    return tasks
