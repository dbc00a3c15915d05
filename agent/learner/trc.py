"""trc: thalamically routed cortical columns, the runtime's continual learner.

Each task is owned by one column (`columns.py`), which alone learns it: a new task takes a free
column, or when none is free shares the one its inputs are most novel to (the most room left), and
the column's spectral memory (`spectral.py`) keeps the gradients of a shared column off what its
earlier tasks used. The router reads the sample itself, never the samples around it: trained on the
present batch and on replayed samples from the cache memory (`cache.py`), DER++-style (stored logits
and labels), to name each sample's owner and to predict its output. At test time a sample takes its
hybrid top-k ∪ top-p columns, whose outputs are combined with the router's own prediction (a product
of experts). The LearnerActor runs it as a world model (`continual_world.py`); `thalamus bench
continual` scores it on the digits sequences beside the baselines (`launch/bench/continual.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agent.learner.cache import CacheMemory
from agent.learner.columns import ColumnConfig, ColumnNet, select
from agent.learner.spectral import ColumnSpectra
from agent.optim import SGD
from memory import LearnerMemory, MemoryBlock

ABLATIONS = ("router", "spectral", "cache")


@dataclass
class TRCConfig:
    """trc's settings: SGD, its memory budget, the columns and router, and how it replays."""

    batch: int = 32  # replayed samples drawn per step
    lr: float = 0.1
    memory: int = 200  # samples the cache keeps
    columns: int = 4  # cortical columns (M); tasks beyond M share columns
    column_hidden: int = 96  # width of each column
    top_k: int = 2  # a sample's columns: at most k ...
    top_p: float = 0.9  # ... and the fewest holding this router mass
    router_hidden: int = 256
    replay_alpha: float = 0.5  # weight of replaying the router's stored outputs (DER++'s alpha)
    aux: float = 0.5  # weight of the router's auxiliary output loss
    combine: float = 5.0  # weight of the router's prediction against the columns' in the output
    consolidation: float = 1.0  # strength of the spectral projection of a shared column's gradients
    spectral_threshold: float = 0.97
    ablate: str | None = None  # without: "router" | "spectral" | "cache" (ABLATIONS)


class TRC:
    """Owner columns + a per-sample router + cache memory + spectral memories."""

    def __init__(self, cfg: TRCConfig, seed: int, in_dim: int = 64, out_dim: int = 10,
                 regression: bool = False, device: str | torch.device = "cpu") -> None:
        """Classifies ``in_dim`` inputs into ``out_dim`` classes, or with ``regression`` predicts
        ``out_dim`` targets (squared error); the same routing and memories either way.
        Everything it keeps lives on ``device``; its inputs must be there too."""
        self.cfg, self.regression, self.device = cfg, regression, torch.device(device)
        self.net = ColumnNet(ColumnConfig(in_dim=in_dim, n_classes=out_dim, columns=cfg.columns, top_k=cfg.top_k,
                                          top_p=cfg.top_p, hidden=cfg.column_hidden,
                                          router_hidden=cfg.router_hidden)).to(self.device)
        self.opt = SGD(self.net.parameters(), lr=cfg.lr)
        self.cache = CacheMemory(cfg.memory, seed, self.device)
        self.spectral = ColumnSpectra(self.net.cfg, cfg.spectral_threshold, self.device)
        self.owners: dict[int, int] = {}  # task → the column that learns it
        self.used = torch.ones(cfg.columns, dtype=torch.bool, device=self.device)  # see _own
        self.steps, self.task = 0, 0

    def begin_task(self, task: int) -> None:
        """Start learning ``task`` with a fresh optimizer (its owner is chosen at its first step)."""
        self.opt = SGD(self.net.parameters(), lr=self.cfg.lr)
        self.task = task

    def owner(self, task: int, x: torch.Tensor) -> int:
        """The column that learns ``task``: its owner, or for a new task the first free column, or when
        none is free the one whose protected inputs explain ``x`` least (the most room left)."""
        if task not in self.owners:
            taken = set(self.owners.values())
            free = [m for m in range(self.net.cfg.columns) if m not in taken]
            self._own({**self.owners, task: free[0] if free else int(self.spectral.novelty(x).argmax())})
        return self.owners[task]

    def _own(self, owners: dict[int, int]) -> None:
        """Set the tasks' owners; routes go only to owning columns (to every column before any task)."""
        self.owners = owners
        used = torch.zeros(self.net.cfg.columns, dtype=torch.bool, device=self.device)
        used[list(owners.values())] = True
        self.used = used if used.any() else ~used

    def step(self, x: torch.Tensor, y: torch.Tensor, task: int, first_epoch: bool) -> float:
        """One step on a batch of ``task``; returns the batch's loss in its owner column (before the update)."""
        cfg = self.cfg
        n, owner = len(x), self.owner(task, x)
        out, acts = self.net.column(x, owner)
        task_loss = self._loss(out, y)
        loss = task_loss
        owners = torch.full((n,), owner, device=x.device)
        replay = self.cache.sample(cfg.batch) if cfg.ablate != "cache" else None
        written: dict[str, torch.Tensor] = {}
        if cfg.ablate != "router":  # the router learns the owner and the output, of this batch and of replay
            route, aux = self.net.router(x if replay is None else torch.cat([x, replay["x"]]))
            masked = route.masked_fill(~self.used, -1e9)
            loss = loss + F.cross_entropy(masked[:n], owners) + cfg.aux * self._loss(aux[:n], y)
            if replay is not None:
                loss = loss + (F.cross_entropy(masked[n:], replay["owner"]) + cfg.aux * self._loss(aux[n:], replay["labels"])
                               + cfg.replay_alpha * (F.mse_loss(route[n:], replay["route"])
                                                     + cfg.aux * F.mse_loss(aux[n:], replay["aux"])))
            written = {"route": route[:n], "aux": aux[:n]}
        self.opt.zero_grad()
        loss.backward()
        if cfg.ablate != "spectral":
            self.spectral.project(self.net, owner, cfg.consolidation)
        self.opt.step()
        if cfg.ablate != "spectral":
            self.spectral.observe(owner, acts)
        if cfg.ablate != "cache":  # written after the backward pass, as stashed during the forward
            self.cache.stash(x=x, labels=y, logits=out, owner=owners,
                             task=torch.full((n,), task, dtype=torch.int32, device=x.device), **written)
            self.cache.flush()
        self.steps += 1
        return task_loss.item()

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target) if self.regression else F.cross_entropy(out, target)

    def end_task(self, task: int) -> None:
        """The task is over: what it taught joins its column's protected spectral bases."""
        self.spectral.consolidate()

    @torch.no_grad()
    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Each sample of x [N, in] on its own → outputs [N, classes] and its routing weights [N, M].
        Classification adds the columns' and the router's log-probabilities (``combine`` weighting the
        router); regression averages their predictions with the same weights."""
        if self.cfg.ablate == "router":  # every owning column, equally
            weights = self.used.float().expand(len(x), -1) / self.used.sum()
            return self.net(x, weights), weights
        route, aux = self.net.router(x)
        weights = select(route, self.used, self.cfg.top_k, self.cfg.top_p)
        out, c = self.net(x, weights), self.cfg.combine
        if self.regression:
            return (out + c * aux) / (1 + c), weights
        return out.log_softmax(-1) + c * aux.log_softmax(-1), weights

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs [N, classes] of x, each sample routed on its own (see :meth:`predict`)."""
        return self.predict(x)[0]

    def memory_blocks(self) -> tuple[MemoryBlock, list[MemoryBlock]]:
        """The cache and, per column, its three layers' spectral memories, for the run store."""
        arrays, attrs = self.cache.to_arrays()
        columns = []
        for m in range(self.net.cfg.columns):
            layers = {act: mems[m] for act, mems in self.spectral.memories.items()}
            parts = {act: mem.to_arrays() for act, mem in layers.items()}
            columns.append(MemoryBlock(
                arrays={f"{act}_{name}": a for act, (arr, _) in parts.items() for name, a in arr.items()},
                attrs={"rank": sum(mem.basis.shape[1] for mem in layers.values()),
                       "dim": sum(mem.dim for mem in layers.values()),
                       "energy_captured": float(np.mean([mem.energy_captured for mem in layers.values()])),
                       "consolidation": self.cfg.consolidation, "updates": layers["x"].updates,
                       "layers": {act: at for act, (_, at) in parts.items()}}))
        return MemoryBlock(arrays, attrs), columns

    def state_dict(self) -> dict[str, Any]:
        """Everything trc learned and carries, at one moment: weights, optimizer, the tasks' owners,
        and its memories (tensors, numbers and plain containers only)."""
        cache, columns = self.memory_blocks()
        return {"net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
                "optimizer": self.opt.state_dict(), "owners": dict(self.owners), "steps": self.steps,
                "task": self.task,
                "memory": {"cache": _block_tensors(cache), "spectral": [_block_tensors(c) for c in columns]}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["optimizer"])
        self.steps, self.task = int(state["steps"]), int(state["task"])
        memory = state["memory"]
        self.load_memory(LearnerMemory(_block_arrays(memory["cache"]), [_block_arrays(b) for b in memory["spectral"]],
                                       self.steps))
        self._own({int(t): int(m) for t, m in state["owners"].items()})

    def load_memory(self, saved: LearnerMemory) -> None:
        """Restore the cache and spectral memories from ``memory_blocks`` output read back from the
        store, and which column owns each task the cache holds samples of."""
        self.cache.load_arrays(saved.cache.arrays, saved.cache.attrs)
        for m, block in enumerate(saved.spectral):
            for act, mems in self.spectral.memories.items():
                arrays = {name.removeprefix(f"{act}_"): a for name, a in block.arrays.items() if name.startswith(f"{act}_")}
                mems[m].load_arrays(arrays, block.attrs["layers"][act])
        if "owner" in self.cache.data:
            pairs = zip(self.cache.data["task"][: self.cache.size].tolist(), self.cache.data["owner"][: self.cache.size].tolist())
            self._own({int(t): int(m) for t, m in pairs})


__all__ = ["ABLATIONS", "TRC", "TRCConfig"]


def _block_tensors(block: MemoryBlock) -> dict[str, Any]:
    return {"arrays": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in block.arrays.items()},
            "attrs": block.attrs}


def _block_arrays(block: dict[str, Any]) -> MemoryBlock:
    return MemoryBlock({k: v.numpy() for k, v in block["arrays"].items()}, block["attrs"])
