"""trc: thalamically routed cortical columns, the runtime's continual learner.

Routed columns (`columns.py`) with a cache memory (`cache.py`), per-column spectral memories
(`spectral.py`) and a replay controller, trained by SGD one batch of the stream at a time. It routes
on a causal summary of the stream (the decayed average input of the completed steps), so a sample
never routes on itself. The LearnerActor runs it as a world model (`continual_world.py`); `thalamus
bench continual` scores it on the digits sequences beside the baselines (`launch/bench/continual.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from agent.learner.cache import CacheMemory
from agent.learner.columns import ColumnConfig, ColumnNet
from agent.learner.spectral import ColumnSpectra
from agent.optim import SGD
from memory import LearnerMemory, MemoryBlock

ABLATIONS = ("router", "spectral", "cache")


@dataclass
class TRCConfig:
    """trc's settings: SGD, its memory budget, the columns and router, and the replay controller."""

    batch: int = 32  # replayed samples drawn per step (half at random, half nearest the context)
    lr: float = 0.1
    memory: int = 200  # samples the cache keeps
    replay_alpha: float = 0.5  # weight of replaying stored logits (DER++'s alpha, the starting point)
    replay_beta: float = 0.5  # weight of replaying stored labels
    columns: int = 10  # cortical columns (M)
    top_k: int = 2  # columns routed to per step
    column_hidden: int = 96  # width of each column
    consolidation: float = 0.5  # base strength of the spectral projection
    spectral_threshold: float = 0.97
    surprise_gain: float = 0.5
    route_replay: float = 1.0  # weight of replaying where each cached sample was routed
    recruit_similarity: float = 0.9  # a surprising context this close to a column's key does not recruit
    balance: float = 0.05  # load-balance loss weight
    context_decay: float = 0.7  # EMA of completed steps' mean input (the router's summary)
    eval_batch: int = 8
    ablate: str | None = None  # without: "router" | "spectral" | "cache" (ABLATIONS)


class TRC:
    """Routed columns + cache memory + spectral memories + a replay controller."""

    def __init__(self, cfg: TRCConfig, seed: int, in_dim: int = 64, out_dim: int = 10,
                 regression: bool = False, device: str | torch.device = "cpu") -> None:
        """Classifies ``in_dim`` inputs into ``out_dim`` classes, or with ``regression`` predicts
        ``out_dim`` targets (squared error); the same routing, memories and controller either way.
        Everything it keeps lives on ``device``; its inputs must be there too."""
        self.cfg, self.regression, self.device = cfg, regression, torch.device(device)
        self.net = ColumnNet(ColumnConfig(in_dim=in_dim, n_classes=out_dim, columns=cfg.columns, top_k=cfg.top_k,
                                          hidden=cfg.column_hidden)).to(self.device)
        c = self.net.cfg
        self.opt = SGD(self.net.parameters(), lr=cfg.lr)
        self.cache = CacheMemory(cfg.memory, seed, self.device)
        self.spectral = ColumnSpectra(c, cfg.spectral_threshold, self.device)
        self.context_sum, self.context_mass = torch.zeros(c.in_dim, device=self.device), 0.0
        self.usage = torch.full((c.columns,), 1 / c.columns, device=self.device)
        self.free = torch.ones(c.columns, dtype=torch.bool, device=self.device)  # columns no context has recruited yet
        self.loss_fast = self.loss_slow = 1.0
        self.strength, self.replay_scale = cfg.consolidation, 1.0
        self.best_old, self.steps, self.task = 0.0, 0, 0

    @property
    def context(self) -> torch.Tensor:
        """The router's summary: the decayed average input of the completed steps (zero before any)."""
        return self.context_sum / max(self.context_mass, 1e-12)

    def route(self, summary: torch.Tensor, gain: float | torch.Tensor = 1.0) -> tuple[torch.Tensor, ...]:
        """Routing weights [N, M], routing probabilities and logits; without the router, every column equally."""
        if self.cfg.ablate == "router":
            m = self.net.cfg.columns
            uniform = torch.full((len(summary), m), 1 / m, device=summary.device)
            return uniform, uniform, torch.zeros_like(uniform)
        return self.net.router(summary, gain)

    def begin_task(self, task: int) -> None:
        """Start learning ``task``: a fresh optimizer, and the controller's best-so-far forgotten."""
        self.opt = SGD(self.net.parameters(), lr=self.cfg.lr)
        self.task, self.best_old = task, 0.0

    def step(self, x: torch.Tensor, y: torch.Tensor, task: int, first_epoch: bool) -> float:
        """One step on a batch of the stream; returns the batch's task loss (before the update)."""
        cfg = self.cfg
        n, m = len(x), self.net.cfg.columns
        summary = self.context.expand(n, -1)  # completed steps only: this batch is not in it
        surprise = max(0.0, self.loss_fast / max(self.loss_slow, 1e-6) - 1.0)
        replay = None
        if cfg.ablate != "cache" and self.cache.size:  # half drawn at random, half nearest to the context
            parts = [self.cache.sample(cfg.batch // 2), self.cache.nearest(self.context, cfg.batch // 2)]
            replay = {k: torch.cat([p[k] for p in parts]) for k in parts[0]}
            summary = torch.cat([summary, replay["keys"]])  # replayed samples are routed as when written
            x_all = torch.cat([x, replay["x"]])
        else:
            x_all = x
        gain = torch.ones(len(summary), 1, device=summary.device)
        gain[:n] += cfg.surprise_gain * min(surprise, 1.0)  # replayed samples route as they did
        weights, probs, router_logits = self.route(summary, gain)
        logits, acts = self.net(x_all, weights)
        ce = self._loss(logits[:n], y)
        loss = ce + cfg.balance * m * (self.usage * probs[:n].mean(0)).sum()
        if replay is not None:  # replay the stored logits and labels, and where each sample was routed
            out = logits[n:]
            loss = loss + self.replay_scale * (cfg.replay_alpha * F.mse_loss(out, replay["logits"])
                                               + cfg.replay_beta * self._loss(out, replay["labels"]))
            if cfg.ablate != "router":
                loss = loss + cfg.route_replay * F.cross_entropy(router_logits[n:], replay["route"].argmax(-1))
        self.opt.zero_grad()
        loss.backward()
        if cfg.ablate != "spectral":
            self.spectral.project(self.net, self.strength)
        self.opt.step()
        if cfg.ablate != "spectral":
            self.spectral.observe({k: v[:n] for k, v in acts.items()}, weights[:n])
        if cfg.ablate != "cache":  # written after the backward pass, as stashed during the forward
            self.cache.stash(keys=summary[:n], x=x, labels=y, logits=logits[:n], route=weights[:n],
                             task=torch.full((n,), task, dtype=torch.int32, device=x.device))
            self.cache.flush()
        shift = ce.item() > 2 * self.loss_slow  # a surprise this large: the stream changed, forget the old context
        decay = 0.0 if shift else cfg.context_decay
        self.context_sum, self.context_mass = _ema(self.context_sum, self.context_mass, x, decay)
        if shift and cfg.ablate != "router":
            m = self.net.router.recruit(self.context, self.free, self.usage, cfg.recruit_similarity)
            if m is not None:
                self.free[m] = False
        self.usage = 0.99 * self.usage + 0.01 * weights[:n].detach().mean(0)
        self.loss_fast = 0.9 * self.loss_fast + 0.1 * ce.item()
        self.loss_slow = 0.995 * self.loss_slow + 0.005 * ce.item()
        self.steps += 1
        if self.steps % 50 == 0 and task > 0 and cfg.ablate != "cache":
            self._control(task)
        return ce.item()

    def _loss(self, out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return F.mse_loss(out, target) if self.regression else F.cross_entropy(out, target)

    @torch.no_grad()
    def _control(self, task: int) -> None:
        """Replay controller: when accuracy (for regression 1 / (1 + MSE)) on cached samples of earlier
        tasks falls below its best in this task by 2 points, raise consolidation and replay; otherwise
        relax toward the base."""
        old = self.cache.data["task"][: self.cache.size] < task
        if not old.any():
            return
        keys, x, y = (self.cache.data[k][: self.cache.size][old] for k in ("keys", "x", "labels"))
        out, _ = self.net(x, self.route(keys)[0])
        acc = (1 / (1 + float(F.mse_loss(out, y))) if self.regression
               else float((out.argmax(-1) == y).float().mean()))
        self.best_old = max(self.best_old, acc)
        if acc < self.best_old - 0.02:
            self.strength = min(1.0, self.strength + 0.1)
            self.replay_scale = min(2.0, self.replay_scale * 1.25)
        else:
            self.strength = max(self.cfg.consolidation, self.strength - 0.02)
            self.replay_scale = max(1.0, self.replay_scale * 0.98)

    def end_task(self, task: int) -> None:
        """The task is over: what it taught joins the protected spectral bases."""
        self.spectral.consolidate()

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
                       "consolidation": self.strength, "updates": layers["x"].updates,
                       "layers": {act: at for act, (_, at) in parts.items()}}))
        return MemoryBlock(arrays, attrs), columns

    def state_dict(self) -> dict[str, Any]:
        """Everything trc learned and carries, at one moment: weights, optimizer, router context and
        controller, and its memories (tensors, numbers and plain containers only)."""
        cache, columns = self.memory_blocks()
        return {"net": {k: v.detach().cpu().clone() for k, v in self.net.state_dict().items()},
                "optimizer": self.opt.state_dict(),
                "context_sum": self.context_sum.cpu().clone(), "context_mass": float(self.context_mass),
                "usage": self.usage.cpu().clone(), "free": self.free.cpu().clone(),
                "controller": {"loss_fast": self.loss_fast, "loss_slow": self.loss_slow, "strength": self.strength,
                               "replay_scale": self.replay_scale, "best_old": self.best_old, "steps": self.steps,
                               "task": self.task},
                "memory": {"cache": _block_tensors(cache), "spectral": [_block_tensors(c) for c in columns]}}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`state_dict`."""
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["optimizer"])
        self.context_sum = state["context_sum"].to(self.device)
        self.context_mass = float(state["context_mass"])
        self.usage, self.free = state["usage"].to(self.device), state["free"].to(self.device)
        c = state["controller"]
        self.loss_fast, self.loss_slow, self.strength = c["loss_fast"], c["loss_slow"], c["strength"]
        self.replay_scale, self.best_old, self.steps, self.task = c["replay_scale"], c["best_old"], c["steps"], c["task"]
        memory = state["memory"]
        self.load_memory(LearnerMemory(_block_arrays(memory["cache"]), [_block_arrays(b) for b in memory["spectral"]],
                                       self.steps))

    def load_memory(self, saved: LearnerMemory) -> None:
        """Restore the cache and spectral memories from ``memory_blocks`` output read back from the store."""
        self.cache.load_arrays(saved.cache.arrays, saved.cache.attrs)
        for m, block in enumerate(saved.spectral):
            for act, mems in self.spectral.memories.items():
                arrays = {name.removeprefix(f"{act}_"): a for name, a in block.arrays.items() if name.startswith(f"{act}_")}
                mems[m].load_arrays(arrays, block.attrs["layers"][act])
            self.strength = float(block.attrs["consolidation"])
        self.spectral.restack()

    @torch.no_grad()
    def stream(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Samples played as a stream from a fresh context, in steps of 1, 2, 4, then ``eval_batch``
        samples (a cold start costs little): logits [N, classes] and the routing weights [N, M]
        each sample got, from the steps before its own."""
        total, mass, out, routes, start = torch.zeros_like(self.context_sum), 0.0, [], [], 0
        while start < len(x):
            chunk = x[start: start + min(self.cfg.eval_batch, 2 ** len(out))]
            start += len(chunk)
            weights = self.route((total / max(mass, 1e-12)).expand(len(chunk), -1))[0]
            out.append(self.net(chunk, weights)[0])
            routes.append(weights)
            total, mass = _ema(total, mass, chunk, self.cfg.context_decay)
        return torch.cat(out), torch.cat(routes)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Outputs [N, classes] of ``x`` played as a stream from a fresh context (see :meth:`stream`)."""
        return self.stream(x)[0]


def _ema(total: torch.Tensor, mass: float, x: torch.Tensor, decay: float) -> tuple[torch.Tensor, float]:
    """Decayed sums of inputs and of their count: total / mass is a bias-free decayed average."""
    return decay * total + x.sum(0), decay * mass + len(x)


__all__ = ["ABLATIONS", "TRC", "TRCConfig"]


def _block_tensors(block: MemoryBlock) -> dict[str, Any]:
    return {"arrays": {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in block.arrays.items()},
            "attrs": block.attrs}


def _block_arrays(block: dict[str, Any]) -> MemoryBlock:
    return MemoryBlock({k: v.numpy() for k, v in block["arrays"].items()}, block["attrs"])
