"""The digits continual-learning benchmark behind `thalamus bench continual`: trc and the baselines in
one code path, each trained task after task and scored on every task after each one (matrix R).

Methods: ``naive`` (fine-tuning), ``ewc`` (online EWC), ``er`` (experience replay), ``derpp``
(DER++: replay of stored logits and labels), ``gpm`` (gradient projection), ``joint`` (all tasks at
once, the upper bound) — an MLP 64-256-256-10 trained by SGD, as in the reference measurements
(`continual-baselines.md`) — and ``trc``, the runtime's learner (`agent/learner/trc.py`). Every
method that stores samples gets the same budget, ``memory`` samples.

Two test orders (``ORDERS``): ``per-task`` plays each task's test set as its own stream; ``mixed``
plays one stream of every task's test samples, shuffled by the run's seed alone (the same order for
every method), and scores each task on its samples in it. Every method, trc included, scores each
sample on its own, so the orders agree; they would not for a method that read the stream around a sample.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agent.learner.cache import CacheMemory
from agent.learner.forgetting import forgetting_report
from agent.learner.spectral import SpectralMemory
from agent.learner.trc import TRC, TRCConfig
from envs.digits import DigitsTask, digits_tasks
from launch.bench.workers import worker_pool

METHODS = ("trc", "naive", "ewc", "er", "derpp", "gpm", "joint")
ORDERS = ("per-task", "mixed")
MIXED_ORDER_SEED = 1000  # the mixed stream of seed s is shuffled by MIXED_ORDER_SEED + s, whatever the method


@dataclass
class ContinualConfig(TRCConfig):
    """The shared protocol (SGD, batch 32, 20 epochs a task, ``memory`` samples), trc's settings
    (inherited) and the baselines'."""

    epochs: int = 20
    hidden: int = 256  # baselines' MLP width
    replay_beta: float = 0.5  # DER++'s weight of replayed labels (its alpha, for logits, is replay_alpha)
    ewc_lambda: float = 10.0
    gpm_threshold: float = 0.99  # 0.90 is best on split (continual-baselines.md)


def _mlp(hidden: int) -> nn.Sequential:
    """The baselines' network: 64 pixels → hidden → hidden → 10 digits."""
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
        """Start learning ``task`` with a fresh optimizer."""
        self.opt = torch.optim.SGD(self.net.parameters(), lr=self.cfg.lr)

    def step(self, x: torch.Tensor, y: torch.Tensor, task: int, first_epoch: bool) -> None:
        """One SGD step on a batch of ``task``, with the method's replay, penalty or projection."""
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
            self.cache.stash(x=x, labels=y, logits=logits, task=torch.full_like(y, task))
            self.cache.flush()

    def end_task(self, task: int, data: DigitsTask, rng: np.random.Generator) -> None:
        """The task is over: ewc takes its Fisher and anchor, gpm adds its inputs to the protected bases."""
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
        """Outputs [N, 10], each sample on its own."""
        return self.net(x)


def _correct(learner: Baseline | TRC, x: np.ndarray, y: np.ndarray, classes: list[tuple[int, ...]] | None) -> np.ndarray:
    """Whether each sample of the stream ``x`` is answered right; with ``classes`` (task-incremental)
    only each sample's task classes compete."""
    logits = learner.logits(torch.as_tensor(x))
    if classes is not None:
        mask = torch.full(logits.shape, float("-inf"))
        for row, allowed in enumerate(classes):
            mask[row, list(allowed)] = 0
        logits = logits + mask
    return (logits.argmax(-1) == torch.as_tensor(y)).numpy()


@dataclass(frozen=True)
class MixedStream:
    """Every task's test samples in one shuffled order, and the task of each."""

    x: np.ndarray
    y: np.ndarray
    task: np.ndarray

    @classmethod
    def of(cls, tasks: list[DigitsTask], seed: int) -> MixedStream:
        order = np.random.default_rng(MIXED_ORDER_SEED + seed).permutation(sum(len(t.test_x) for t in tasks))
        task = np.concatenate([np.full(len(t.test_x), i) for i, t in enumerate(tasks)])
        return cls(np.concatenate([t.test_x for t in tasks])[order], np.concatenate([t.test_y for t in tasks])[order],
                   task[order])


def score_row(learner: Baseline | TRC, tasks: list[DigitsTask], stream: MixedStream | None,
              task_il: bool) -> list[float]:
    """The learner's accuracy on every task now: one row of R, each task's test set as its own stream
    (``stream`` None) or its samples in the mixed ``stream``."""
    if stream is None:
        return [float(_correct(learner, t.test_x, t.test_y, [t.classes] * len(t.test_x) if task_il else None).mean())
                for t in tasks]
    right = _correct(learner, stream.x, stream.y, [tasks[i].classes for i in stream.task] if task_il else None)
    return [float(right[stream.task == i].mean()) for i in range(len(tasks))]


def run_method(sequence: str, method: str, cfg: ContinualConfig, seed: int,
               orders: tuple[str, ...] = ORDERS) -> dict:
    """Train ``method`` through ``sequence`` with ``seed``, scored after each task under each test order;
    returns, per order, R and its report, and the wall time of the training."""
    torch.manual_seed(seed)
    torch.set_num_threads(1)
    rng = np.random.default_rng(seed)
    tasks = digits_tasks(sequence)
    task_il = sequence.endswith("-task")
    if method == "gpm" and sequence.startswith("split"):
        cfg = replace(cfg, gpm_threshold=0.90)
    learner = TRC(cfg, seed) if method == "trc" else Baseline(method, cfg, seed)
    streams = {o: MixedStream.of(tasks, seed) if o == "mixed" else None for o in orders}
    trained = 0.0
    if method == "joint":  # the union, for as many SGD steps as the sequence takes
        union = DigitsTask("all", np.concatenate([t.train_x for t in tasks]), np.concatenate([t.train_y for t in tasks]),
                           tasks[0].test_x, tasks[0].test_y, tuple(range(10)))
        epochs = cfg.epochs * sum(len(t.train_x) for t in tasks) // len(union.train_x)
        started = time.perf_counter()
        train_task(learner, union, 0, replace(cfg, epochs=max(1, epochs)), rng)
        trained = time.perf_counter() - started
        matrices = {o: [score_row(learner, tasks, streams[o], task_il)] * len(tasks) for o in orders}
    else:
        matrices = {o: [] for o in orders}
        for i, task in enumerate(tasks):
            started = time.perf_counter()
            train_task(learner, task, i, cfg, rng)
            trained += time.perf_counter() - started
            for o in orders:
                matrices[o].append(score_row(learner, tasks, streams[o], task_il))
    out: dict = {"method": method, "seed": seed, "seconds": trained}
    if isinstance(learner, TRC):  # how many columns a test sample is computed in, over every task's test set
        weights = learner.predict(torch.as_tensor(np.concatenate([t.test_x for t in tasks])))[1]
        out["columns_per_sample"] = float((weights > 0).sum(-1).float().mean())
    for o, matrix in matrices.items():
        report = forgetting_report(matrix)
        out[o] = {"acc": report.average, "bwt": report.backward_transfer, "forgetting": report.forgetting,
                  "forgetting_auc": report.forgetting_auc, "matrix": report.matrix}
    return out


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
    if isinstance(learner, TRC):  # trc needs nothing of the task's data to consolidate
        learner.end_task(index)
    else:
        learner.end_task(index, task, rng)


def _job(args: tuple[str, str, ContinualConfig, int, tuple[str, ...]]) -> dict:
    sequence, name, cfg, seed, orders = args
    method, _, without = name.partition("-no-")
    return run_method(sequence, method, replace(cfg, ablate=without or None), seed, orders)


def run_benchmark(sequence: str, methods: list[str], seeds: list[int], cfg: ContinualConfig, workers: int = 2,
                  progress: Callable[[str, dict], None] | None = None,
                  orders: tuple[str, ...] = ORDERS) -> dict[str, list[dict]]:
    """Every (method, seed) run, ``workers`` processes at a time; method names may be ablations
    (``trc-no-router``, ``trc-no-spectral``, ``trc-no-cache``). Returns the runs of each method."""
    jobs = [(sequence, name, cfg, seed, orders) for name in methods for seed in seeds]
    results: dict[str, list[dict]] = {name: [] for name in methods}
    with worker_pool(workers) as pool:
        for (_, name, _, _, _), run in zip(jobs, pool.imap(_job, jobs)):
            results[name].append(run)
            if progress is not None:
                progress(name, run)
    return results


__all__ = ["METHODS", "ORDERS", "Baseline", "ContinualConfig", "MixedStream", "run_benchmark", "run_method",
           "score_row", "train_task"]
