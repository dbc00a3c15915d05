"""Continual learning on a task sequence, top to bottom: our method (``trc``) and the baselines in
one code path, each trained task after task and scored on every task after each one (matrix R).

Methods: ``naive`` (fine-tuning), ``ewc`` (online EWC), ``er`` (experience replay), ``derpp``
(DER++: replay of stored logits and labels), ``gpm`` (gradient projection), ``joint`` (all tasks at
once, the upper bound) — an MLP 64-256-256-10 trained by SGD, as in the reference measurements
(`continual-baselines.md`) — and ``trc``: thalamically routed columns (`columns.py`) with a cache
memory (`cache.py`), per-column spectral memories (`spectral.py`) and a replay controller. Every
method that stores samples gets the same budget, ``memory`` samples.

``trc`` routes on a causal summary of the stream: the average input of the completed steps. It is
scored on each task's test set played as a stream, so its router sees the recent past of that
stream (never the sample being scored); the baselines score each sample on its own.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent.learner.cache import CacheMemory
from agent.learner.columns import ColumnConfig, ColumnNet
from agent.learner.forgetting import forgetting_report
from agent.learner.spectral import ColumnSpectra, SpectralMemory
from envs.digits import DigitsTask, digits_tasks
from memory import LearnerMemory, MemoryBlock

METHODS = ("trc", "naive", "ewc", "er", "derpp", "gpm", "joint")
ABLATIONS = ("router", "spectral", "cache")


@dataclass
class ContinualConfig:
    """The shared protocol (SGD, batch 32, 20 epochs a task) and each method's settings."""

    epochs: int = 20
    batch: int = 32
    lr: float = 0.1
    memory: int = 200  # samples any method may keep
    hidden: int = 256  # baselines' MLP width
    ewc_lambda: float = 10.0
    gpm_threshold: float = 0.99  # 0.90 is best on split (continual-baselines.md)
    replay_alpha: float = 0.5  # DER++'s logit-replay weight (trc starts from the same)
    replay_beta: float = 0.5  # DER++'s label-replay weight
    columns: int = 10  # trc: cortical columns (M)
    top_k: int = 2  # trc: columns routed to per step
    column_hidden: int = 96  # trc: width of each column
    consolidation: float = 0.5  # trc: base strength of the spectral projection
    spectral_threshold: float = 0.97
    surprise_gain: float = 0.5
    route_replay: float = 1.0  # weight of replaying where each cached sample was routed
    recruit_similarity: float = 0.9  # a surprising context this close to a column's key does not recruit
    balance: float = 0.05  # load-balance loss weight
    context_decay: float = 0.7  # EMA of completed steps' mean input (the router's summary)
    eval_batch: int = 8
    ablate: str | None = None  # trc without: "router" | "spectral" | "cache"


def _mlp(hidden: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(64, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 10))


class Baseline:
    """naive / ewc / er / derpp / gpm / joint on one MLP."""

    def __init__(self, method: str, cfg: ContinualConfig, seed: int) -> None:
        self.method, self.cfg = method, cfg
        self.net = _mlp(cfg.hidden)
        self.opt = torch.optim.SGD(self.net.parameters(), lr=cfg.lr)
        self.cache = CacheMemory(cfg.memory, seed)
        self.linears = [m for m in self.net if isinstance(m, nn.Linear)]
        self.bases = [SpectralMemory(m.in_features + 1, cfg.gpm_threshold) for m in self.linears]  # bias folded in
        self.fisher = [torch.zeros_like(p) for p in self.net.parameters()]
        self.anchor = [p.detach().clone() for p in self.net.parameters()]

    def begin_task(self, task: int) -> None:
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr)

    def step(self, x: torch.Tensor, y: torch.Tensor, task: int, first_epoch: bool) -> None:
        cfg = self.cfg
        logits = self.net(x)
        loss = F.cross_entropy(logits, y)
        if self.method == "er" and (b := self.cache.sample(cfg.batch)) is not None:
            loss = loss + F.cross_entropy(self.net(b["x"]), b["labels"])
        if self.method == "derpp" and (b := self.cache.sample(cfg.batch)) is not None:
            loss = loss + cfg.replay_alpha * F.mse_loss(self.net(b["x"]), b["logits"])
            b = self.cache.sample(cfg.batch)
            loss = loss + cfg.replay_beta * F.cross_entropy(self.net(b["x"]), b["labels"])
        self.opt.zero_grad()
        loss.backward()
        if self.method == "ewc":
            for p, f, a in zip(self.net.parameters(), self.fisher, self.anchor):
                p.grad += (cfg.ewc_lambda * f).clamp(max=1 / cfg.lr) * (p.detach() - a)
        if self.method == "gpm":
            for lin, basis in zip(self.linears, self.bases):  # [W | b] as one map of [x, 1]
                g = basis.project(torch.cat([lin.weight.grad.T, lin.bias.grad[None]]), 1.0)
                lin.weight.grad, lin.bias.grad = g[:-1].T.contiguous(), g[-1].contiguous()
        self.opt.step()
        if self.method == "derpp" or (self.method == "er" and first_epoch):
            self.cache.stash(x=x, labels=y, logits=logits, keys=x, task=torch.full_like(y, task))
            self.cache.flush()

    def end_task(self, task: int, data: DigitsTask, rng: np.random.Generator) -> None:
        if self.method == "ewc":
            idx = rng.permutation(len(data.train_x))[:500]
            for i in idx:  # empirical Fisher: squared per-sample gradients at the true labels
                self.net.zero_grad()
                F.cross_entropy(self.net(torch.as_tensor(data.train_x[i: i + 1])),
                                torch.as_tensor(data.train_y[i: i + 1])).backward()
                for f, p in zip(self.fisher, self.net.parameters()):
                    f += p.grad.detach() ** 2 / len(idx)
            self.anchor = [p.detach().clone() for p in self.net.parameters()]
        if self.method == "gpm":
            x = torch.as_tensor(data.train_x[rng.permutation(len(data.train_x))[:200]])
            with torch.no_grad():
                for lin, basis in zip(self.linears, self.bases):
                    basis.observe(torch.cat([x, torch.ones(len(x), 1)], 1))
                    basis.consolidate()
                    x = torch.relu(lin(x))

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class TRC:
    """Routed columns + cache memory + spectral memories + a replay controller."""

    def __init__(self, cfg: ContinualConfig, seed: int, in_dim: int = 64, out_dim: int = 10,
                 regression: bool = False, device: str | torch.device = "cpu") -> None:
        """Classifies ``in_dim`` inputs into ``out_dim`` classes, or with ``regression`` predicts
        ``out_dim`` targets (squared error); the same routing, memories and controller either way.
        Everything it keeps lives on ``device``; its inputs must be there too."""
        self.cfg, self.regression, self.device = cfg, regression, torch.device(device)
        self.net = ColumnNet(ColumnConfig(in_dim=in_dim, n_classes=out_dim, columns=cfg.columns, top_k=cfg.top_k,
                                          hidden=cfg.column_hidden)).to(self.device)
        c = self.net.cfg
        self.opt = torch.optim.SGD(self.net.parameters(), lr=cfg.lr)
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
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr)
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

    def end_task(self, task: int, data: DigitsTask, rng: np.random.Generator) -> None:
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
        return self.stream(x)[0]


def _ema(total: torch.Tensor, mass: float, x: torch.Tensor, decay: float) -> tuple[torch.Tensor, float]:
    """Decayed sums of inputs and of their count: total / mass is a bias-free decayed average."""
    return decay * total + x.sum(0), decay * mass + len(x)


def _accuracy(learner, task: DigitsTask, task_incremental: bool) -> float:
    logits = learner.logits(torch.as_tensor(task.test_x))
    if task_incremental:  # only the task's own classes compete
        mask = torch.full((10,), float("-inf"))
        mask[list(task.classes)] = 0
        logits = logits + mask
    return float((logits.argmax(-1) == torch.as_tensor(task.test_y)).float().mean())


def run_method(sequence: str, method: str, cfg: ContinualConfig, seed: int) -> dict:
    """Train ``method`` through ``sequence`` with ``seed``; returns R, its report and the wall time."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    tasks = digits_tasks(sequence)
    task_il = sequence.endswith("-task")
    if method == "gpm" and sequence.startswith("split"):
        cfg = replace(cfg, gpm_threshold=0.90)
    learner = TRC(cfg, seed) if method == "trc" else Baseline(method, cfg, seed)
    started = time.perf_counter()
    if method == "joint":  # the union, for as many SGD steps as the sequence takes
        union = DigitsTask("all", np.concatenate([t.train_x for t in tasks]), np.concatenate([t.train_y for t in tasks]),
                           tasks[0].test_x, tasks[0].test_y, tuple(range(10)))
        epochs = cfg.epochs * sum(len(t.train_x) for t in tasks) // len(union.train_x)
        train_task(learner, union, 0, replace(cfg, epochs=max(1, epochs)), rng)
        row = [_accuracy(learner, t, task_il) for t in tasks]
        matrix = [row for _ in tasks]
    else:
        matrix = []
        for i, task in enumerate(tasks):
            train_task(learner, task, i, cfg, rng)
            matrix.append([_accuracy(learner, t, task_il) for t in tasks])
    report = forgetting_report(matrix)
    return {"method": method, "seed": seed, "seconds": time.perf_counter() - started,
            "acc": report.average, "bwt": report.backward_transfer, "forgetting": report.forgetting,
            "forgetting_auc": report.forgetting_auc, "matrix": report.matrix}


def train_task(learner: Baseline | TRC, task: DigitsTask, index: int, cfg: ContinualConfig,
               rng: np.random.Generator) -> None:
    """``cfg.epochs`` shuffled passes over one task's training split, then the task's end."""
    x, y = torch.as_tensor(task.train_x), torch.as_tensor(task.train_y)
    learner.begin_task(index)
    for epoch in range(cfg.epochs):
        order = torch.as_tensor(rng.permutation(len(x)))
        for start in range(0, len(x), cfg.batch):
            idx = order[start: start + cfg.batch]
            learner.step(x[idx], y[idx], index, epoch == 0)
    learner.end_task(index, task, rng)


def _job(args: tuple[str, str, ContinualConfig, int]) -> dict:
    sequence, name, cfg, seed = args
    method, _, without = name.partition("-no-")
    return run_method(sequence, method, replace(cfg, ablate=without or None), seed)


def run_benchmark(sequence: str, methods: list[str], seeds: list[int], cfg: ContinualConfig,
                  workers: int = 2, progress=None) -> dict[str, list[dict]]:
    """Every (method, seed) run, ``workers`` processes at a time; method names may be ablations
    (``trc-no-router``, ``trc-no-spectral``, ``trc-no-cache``). Returns the runs of each method."""
    import multiprocessing as mp

    jobs = [(sequence, name, cfg, seed) for name in methods for seed in seeds]
    results: dict[str, list[dict]] = {name: [] for name in methods}
    with mp.get_context("spawn").Pool(workers) as pool:
        for (_, name, _, _), run in zip(jobs, pool.imap(_job, jobs)):
            results[name].append(run)
            if progress is not None:
                progress(name, run)
    return results


__all__ = ["ABLATIONS", "METHODS", "TRC", "Baseline", "ContinualConfig", "run_benchmark", "run_method", "train_task"]
