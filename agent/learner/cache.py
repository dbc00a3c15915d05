"""Cache memory: a bounded store of past samples, drawn at random and replayed to consolidate.

Entries are whatever the learner stashes, one row per sample (trc: the sample, its label, owner and
task, and the outputs its column and router gave it, replayed as targets as DER++ does). Writes are *stashed* during the forward pass and *flushed*
after the backward pass, so a step never reads what it is about to learn from. Eviction policy:
reservoir sampling over every sample ever offered, so the cache is a uniform sample of the stream.
"""

from __future__ import annotations

import numpy as np
import torch


class CacheMemory:
    """``capacity`` entries; ``stash`` during forward, ``flush`` after backward, ``sample`` to read."""

    def __init__(self, capacity: int, seed: int, device: str | torch.device = "cpu") -> None:
        self.capacity, self.device = capacity, torch.device(device)
        self.rng = np.random.default_rng(seed)
        self.data: dict[str, torch.Tensor] = {}
        self.size = self.offered = self.writes = self.evictions = 0
        self._stash: list[dict[str, torch.Tensor]] = []

    def stash(self, **entries: torch.Tensor) -> None:
        """Hold a batch of candidate entries (one row each) until ``flush``."""
        self._stash.append({k: v.detach().clone() for k, v in entries.items()})

    def flush(self) -> None:
        """Write the stashed rows by reservoir sampling: the n-th row ever offered is kept with
        probability capacity / n, replacing a uniformly chosen entry (an eviction)."""
        for batch in self._stash:
            n = len(next(iter(batch.values())))
            order = self.offered + 1 + np.arange(n)  # each row's position in the stream
            self.offered += n
            slots = np.where(order <= self.capacity, order - 1, self.rng.integers(order))
            keep = slots < self.capacity
            rows, slots = np.flatnonzero(keep), slots[keep]
            _, last = np.unique(slots[::-1], return_index=True)  # a slot hit twice keeps the later row
            rows, slots = rows[::-1][last], slots[::-1][last]
            self.evictions += int((slots < self.size).sum())
            self.size = min(self.capacity, max(self.size, int(order[-1])))
            self._put(torch.as_tensor(slots), {k: v[torch.as_tensor(rows)] for k, v in batch.items()})
        self._stash.clear()

    def _put(self, slots: torch.Tensor, rows: dict[str, torch.Tensor]) -> None:
        if not self.data:
            self.data = {k: torch.zeros((self.capacity, *v.shape[1:]), dtype=v.dtype, device=self.device)
                         for k, v in rows.items()}
        for k, v in rows.items():
            self.data[k][slots] = v
        self.writes += len(slots)

    def sample(self, n: int) -> dict[str, torch.Tensor] | None:
        """``n`` uniformly drawn entries (None while empty)."""
        if self.size == 0:
            return None
        idx = torch.as_tensor(self.rng.integers(self.size, size=min(n, self.size)))
        return {k: v[idx] for k, v in self.data.items()}

    def to_arrays(self) -> tuple[dict[str, np.ndarray], dict]:
        """What the run store keeps: the filled rows and the counters."""
        arrays = {k: v[: self.size].cpu().numpy() for k, v in self.data.items()}
        attrs = {"capacity": self.capacity, "size": self.size, "offered": self.offered, "writes": self.writes,
                 "evictions": self.evictions, "policy": "reservoir",
                 "rng": self.rng.bit_generator.state}
        return arrays, attrs

    def load_arrays(self, arrays: dict[str, np.ndarray], attrs: dict) -> None:
        """Restore from ``to_arrays`` output (reads and future evictions continue identically)."""
        self.capacity, self.size = int(attrs["capacity"]), int(attrs["size"])
        self.offered, self.writes, self.evictions = int(attrs["offered"]), int(attrs["writes"]), int(attrs["evictions"])
        self.rng.bit_generator.state = attrs["rng"]
        self.data = {}
        for k, v in arrays.items():
            full = torch.zeros((self.capacity, *v.shape[1:]), dtype=torch.from_numpy(v).dtype, device=self.device)
            full[: self.size] = torch.from_numpy(v).to(self.device)
            self.data[k] = full
