"""Skills on a robot arm, one after another: the imitation benchmarks behind `thalamus bench continual
--benchmark mw-easy-imitation|cw10-imitation`.

Each method (`agent/policy/diffusion/continual.py`) learns the sequence's Meta-World tasks in order
from their scripted-expert demonstrations (``--data``: stores made by `thalamus record --expert`),
and after each task plays rollouts of every task learned so far, the cells R[i][j], j ≤ i, of the
success matrix (the tasks not yet learned are not played). Continual World's figures follow from R:
average performance (the mean final success), forgetting (a task's success right after it was
learned minus its final one, averaged over all tasks but the last) and backward transfer. Every run
uses the same demonstrations, the same held-out episodes (`thalamus eval`'s seeds) and the same state
scaling, fitted once on every task's demonstrations: the one thing every method knows in advance.
trc with ``practice`` also plays that many episodes of each task as it ends (training seeds, never
evaluated on), which no other method does: they are counted in its training time.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from agent.learner.forgetting import forgetting_report, task_forgetting
from agent.policy.diffusion.config import DiffusionConfig
from agent.policy.diffusion.continual import ImitationConfig, ImitationLearner
from agent.policy.diffusion.data import Normalizer, load_demos, split, windows
from agent.policy.diffusion.policy import DiffusionPolicy
from agent.policy.diffusion.rollout import make_envs, rollouts
from envs.seeds import eval_seed, practice_seed
from launch.bench.workers import worker_manager, worker_pool

SEQUENCES = {"mw-easy-imitation": "mw-easy", "cw10-imitation": "cw10"}
HELD_OUT = 0.1  # of a task's episodes: trc keeps some of their windows aside (never replayed) to choose columns


@dataclass(frozen=True)
class ImitationTasks:
    """A sequence's tasks: names, env ids, each one's training windows under the shared scaling, and
    which of them come from the episodes whose windows trc keeps aside to choose its columns (a tenth, seeded)."""

    names: list[str]
    env_ids: list[str]
    obs: list[np.ndarray]
    act: list[np.ndarray]
    held: list[np.ndarray]
    normalizer: Normalizer
    model: DiffusionConfig


def load_tasks(benchmark: str, data: list[Path]) -> ImitationTasks:
    """Every task of the benchmark's sequence from the stores in ``data`` (DemoDataError, one line, when
    one is missing)."""
    from envs.tasks import METAWORLD_SEQUENCES

    demos = [load_demos(data, name) for name in METAWORLD_SEQUENCES[SEQUENCES[benchmark]]]
    norm = Normalizer.fit(np.concatenate([e.states for d in demos for e in d.episodes]))
    first = demos[0].episodes[0]
    model = DiffusionConfig(obs_dim=first.states.shape[1], action_dim=first.actions.shape[1])
    pairs = [windows(d.episodes, norm, model.obs_horizon, model.horizon) for d in demos]
    held = []
    for d in demos:
        out = {id(e) for e in split(d.episodes, HELD_OUT, seed=0)[1]}
        held.append(np.repeat([id(e) in out for e in d.episodes], [len(e.states) for e in d.episodes]))
    return ImitationTasks([d.task for d in demos], [str(d.env_id) for d in demos], [p[0] for p in pairs],
                          [p[1] for p in pairs], held, norm, model)


def run_imitation(benchmark: str, method: str, cfg: ImitationConfig, seed: int, data: list[Path], episodes: int,
                  device: str = "cpu", learned: Callable[[int], None] | None = None, cells: str = "all") -> dict:
    """One method and seed through the sequence: R (None where not played), its report, the training
    seconds, the stored windows and their bytes, and for trc the columns a window is computed in.
    ``learned(i)`` is called once task i is learned and played (a run takes minutes a task on a CPU).
    ``cells``: "all" plays every learned task after each task; "metrics" only the cells the metrics
    read (each task right after it is learned, and every task at the end)."""
    torch.set_num_threads(1)
    tasks = load_tasks(benchmark, data)
    cfg = ImitationConfig(**{**cfg.__dict__, "model": tasks.model})
    n = len(tasks.names)
    learner = ImitationLearner(method, cfg, n, seed, device)
    tensors = [(torch.from_numpy(o).to(device), torch.from_numpy(a).to(device)) for o, a in zip(tasks.obs, tasks.act)]
    holds = [torch.from_numpy(h).to(device) for h in tasks.held]
    sampler = learner.sampler()
    envs: dict[int, list] = {}
    matrix = [[None] * n for _ in range(n)]
    trained = 0.0

    practice: dict[str, float] = {}

    def play(j: int, count: int = episodes, seeds: Callable[[int, int], int] = eval_seed) -> float:
        envs.setdefault(j, make_envs(tasks.env_ids[j], min(10, max(episodes, cfg.practice))))
        policy = DiffusionPolicy.from_sampler(cfg.model, tasks.normalizer, sampler, device)
        outcomes = rollouts(policy, tasks.env_ids[j], count, seed=0, envs=envs[j], seeds=seeds)
        return float(np.mean([o.success for o in outcomes]))

    try:
        if method == "multitask":  # the union, for as many steps as the sequence takes
            started = time.perf_counter()
            learner.train_task(0, torch.cat([o for o, _ in tensors]), torch.cat([a for _, a in tensors]), cfg.steps * n)
            trained = time.perf_counter() - started
            final = [play(j) for j in range(n)]
            matrix = [[final[j] if j <= i else None for j in range(n)] for i in range(n)]
            if learned is not None:
                for i in range(n):  # all learned at once
                    learned(i)
        elif method == "single":  # each task alone, from fresh weights: played right after, never again
            for i, ((obs, act), h) in enumerate(zip(tensors, holds)):
                learner = ImitationLearner(method, cfg, n, seed, device)
                sampler = learner.sampler()
                started = time.perf_counter()
                learn(learner, i, obs, act, h)
                trained += time.perf_counter() - started
                matrix[i][i] = play(i)
                if learned is not None:
                    learned(i)
        else:
            for i, ((obs, act), h) in enumerate(zip(tensors, holds)):
                started = time.perf_counter()
                learn(learner, i, obs, act, h)
                if method == "trc" and cfg.practice:  # its practice episodes, a part of learning the task
                    practice[tasks.names[i]] = play(i, cfg.practice, practice_seed)
                    learner.practise(i, practice[tasks.names[i]])
                trained += time.perf_counter() - started
                for j in range(i + 1):
                    if cells == "all" or j == i or i == n - 1:
                        matrix[i][j] = play(j)
                if learned is not None:
                    learned(i)
    finally:
        for made in envs.values():
            for env in made:
                env.close()
    filled = [[v if v is not None else 0.0 for v in row] for row in matrix]  # the report reads no unplayed cell
    report = forgetting_report(filled)
    if method == "single":  # no sequence: its average is that of the tasks each learned alone, and nothing is forgotten
        acc, bwt, forgotten = float(np.mean([matrix[i][i] for i in range(n)])), 0.0, 0.0
    else:
        acc, bwt, forgotten = report.average, report.backward_transfer, float(np.mean(task_forgetting(filled)[:-1]))
    return {"method": method, "seed": seed, "seconds": trained, "tasks": tasks.names, "matrix": matrix,
            "acc": acc, "bwt": bwt, "forgetting": forgotten, "episodes": episodes,
            "memory": {"windows": learner.stored_windows(), "bytes": learner.memory_bytes()},
            "plays": {tasks.names[i]: tasks.names[_task_of(learner, learner.plays[c])] for i, c in learner.owners.items()},
            "practice": practice,
            "choices": [c | {"after": tasks.names[c["after"]], "task": tasks.names[c["task"]]} for c in learner.choices],
            "columns_per_sample": sampler.routed / sampler.windows if method == "trc" and sampler.windows else None}


def learn(learner: ImitationLearner, task: int, obs: torch.Tensor, act: torch.Tensor, held: torch.Tensor) -> None:
    """One task, as the benchmark teaches it: every method trains on all of its windows; trc keeps some
    of the ``held`` ones to choose columns with."""
    learner.train_task(task, obs, act, held=(obs[held], act[held]) if learner.method == "trc" else None)


def _task_of(learner: ImitationLearner, column: int) -> int:
    """The task whose column this is."""
    return next(i for i, c in learner.owners.items() if c == column)


def _job(job: tuple[tuple, Any]) -> dict:
    """One run in a pool worker; each task it learns goes on ``learned`` as (method, seed, task)."""
    (benchmark, method, cfg, seed, data, episodes, device, cells), learned = job
    return run_imitation(benchmark, method, cfg, seed, data, episodes, device,
                         learned=lambda i: learned.put((method, seed, i)), cells=cells)


def run_imitation_benchmark(benchmark: str, methods: list[str], seeds: list[int], cfg: ImitationConfig,
                            data: list[Path], episodes: int, device: str = "cpu", workers: int = 2,
                            progress: Callable[[str, dict], None] | None = None,
                            learned: Callable[[str, int, int], None] | None = None,
                            cells: str = "all") -> dict[str, list[dict]]:
    """Every (method, seed) run, ``workers`` processes at a time. Returns the runs of each method.
    ``progress(method, run)`` follows each run as it ends, ``learned(method, seed, task)`` each task."""
    results: dict[str, list[dict]] = {name: [] for name in methods}
    with worker_manager() as manager, worker_pool(workers) as pool:
        tasks: Any = manager.Queue()
        relay = threading.Thread(target=_relay, args=(tasks, learned), daemon=True)
        relay.start()
        jobs = [((benchmark, name, cfg, seed, data, episodes, device, cells), tasks)  # a seed's methods together
                for seed in seeds for name in methods]
        for run in pool.imap_unordered(_job, jobs):  # as each finishes
            results[run["method"]].append(run)
            if progress is not None:
                progress(run["method"], run)
        tasks.put(None)
        relay.join()
    for runs in results.values():
        runs.sort(key=lambda r: r["seed"])
    return results


def _relay(tasks: Any, learned: Callable[[str, int, int], None] | None) -> None:
    """The workers' learned tasks, to ``learned``, until None."""
    while (item := tasks.get()) is not None:
        if learned is not None:
            learned(*item)


__all__ = ["SEQUENCES", "ImitationTasks", "learn", "load_tasks", "run_imitation", "run_imitation_benchmark"]
