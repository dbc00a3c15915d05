"""The continual learner: its router reads each sample alone, its memories behave as documented, it
learns a task sequence without forgetting it, and its memories come back from the run store after a SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.learner.cache import CacheMemory
from agent.learner.columns import ColumnConfig, ColumnNet, select
from agent.learner.forgetting import forgetting_report
from agent.learner.spectral import SpectralMemory
from agent.learner.trc import TRC, TRCConfig
from envs.digits import digits_tasks
from launch.bench.continual import ContinualConfig, MixedStream, run_method

ROOT = Path(__file__).resolve().parents[1]


def _trained_trc(steps: int = 30, seed: int = 0) -> TRC:
    torch.manual_seed(seed)
    learner = TRC(TRCConfig(), seed)
    task = digits_tasks("split-digits")[0]
    x, y = torch.as_tensor(task.train_x), torch.as_tensor(task.train_y)
    learner.begin_task(0)
    for i in range(steps):
        idx = torch.arange(i * 8, i * 8 + 32) % len(x)
        learner.step(x[idx], y[idx], 0, True)
    return learner


def _two_task_trc(steps: int = 120) -> tuple[TRC, list]:
    """trc after ``steps`` steps on each of split-digits' first two tasks (0/1, then 2/3)."""
    torch.manual_seed(0)
    learner, tasks = TRC(TRCConfig(), 0), digits_tasks("split-digits")[:2]
    for t, task in enumerate(tasks):
        x, y = torch.as_tensor(task.train_x), torch.as_tensor(task.train_y)
        learner.begin_task(t)
        for i in range(steps):
            idx = torch.arange(i * 32, i * 32 + 32) % len(x)
            learner.step(x[idx], y[idx], t, True)
        learner.end_task(t)
    return learner, tasks


def test_routes_depend_on_the_sample_and_never_on_later_samples():
    """Each test sample finds its task's column from itself alone: in a stream mixing two tasks, the
    route of every sample is the one it gets alone, whatever comes after (or before) it, and most
    samples' strongest column is their own task's owner."""
    learner, tasks = _two_task_trc()
    stream = MixedStream.of(tasks, 0)
    x = torch.as_tensor(stream.x)
    _, routes = learner.predict(x)
    for t in (0, 1, 17, len(x) - 2):
        later = x.clone()
        later[t + 1:] = torch.rand_like(later[t + 1:])
        assert torch.equal(learner.predict(later)[1][: t + 1], routes[: t + 1])
        alone = learner.predict(x[t: t + 1])[1]  # the same up to a batch's summation order
        assert torch.equal(alone > 0, routes[t: t + 1] > 0) and torch.allclose(alone, routes[t: t + 1], atol=1e-6)
    owners = torch.as_tensor([learner.owners[int(t)] for t in stream.task])
    assert learner.owners[0] != learner.owners[1]
    assert (routes.argmax(-1) == owners).float().mean() > 0.9
    per_sample = (routes > 0).sum(-1)
    assert per_sample.min() >= 1 and per_sample.max() <= learner.cfg.top_k


def test_hybrid_routing_keeps_the_top_p_mass_within_k_and_computes_only_routed_columns():
    torch.manual_seed(0)
    cfg = ColumnConfig(columns=5, top_k=3, top_p=0.8)
    logits = torch.randn(200, 5) * 3
    allowed = torch.tensor([True, True, False, True, True])
    weights = select(logits, allowed, cfg.top_k, cfg.top_p)
    probs = logits.masked_fill(~allowed, float("-inf")).softmax(-1)
    chosen = weights > 0
    assert not chosen[:, 2].any() and torch.allclose(weights.sum(-1), torch.ones(200))
    kept = (probs * chosen).sum(-1)
    count = chosen.sum(-1)
    assert ((kept >= 0.8) | (count == 3)).all() and (count >= 1).all() and (count <= 3).all()
    dropped_best = torch.where(chosen, torch.zeros_like(probs), probs).max(-1).values
    assert (dropped_best <= torch.where(chosen, probs, torch.ones_like(probs)).min(-1).values).all()
    trimmed = (kept - torch.where(chosen, probs, torch.ones_like(probs)).min(-1).values < 0.8) | (count == 1)
    assert trimmed.all()  # no kept column could be dropped while still holding p
    assert (count == 1).any() and (count > 1).any()
    net = ColumnNet(cfg)
    x = torch.randn(200, cfg.in_dim)
    dense = torch.einsum("nm,mnc->nc", weights, torch.stack([net.column(x, m)[0] for m in range(5)]))
    assert torch.allclose(net(x, weights), dense, atol=1e-5)


def test_cache_stash_is_invisible_until_flush_and_reservoir_is_uniform():
    cache = CacheMemory(100, seed=0)
    for step in range(50):
        x = torch.full((20, 1), float(step))
        cache.stash(keys=x, x=x, labels=torch.zeros(20, dtype=torch.long), task=torch.full((20,), step // 10))
        if step == 0:
            assert cache.size == 0 and cache.sample(4) is None
        cache.flush()
    assert cache.size == 100 and cache.offered == 1000 and cache.evictions > 0
    counts = torch.bincount(cache.data["task"], minlength=5)
    assert counts.min() >= 8, counts  # each fifth of the stream keeps about 20 of 100 slots


def test_spectral_projection_keeps_old_outputs():
    torch.manual_seed(0)
    old = torch.randn(200, 3) @ torch.randn(3, 16)  # old inputs span 3 directions
    mem = SpectralMemory(16, threshold=0.999)
    mem.observe(old)
    mem.consolidate()
    assert mem.basis.shape[1] == 3 and mem.energy_captured > 0.999
    assert mem.novelty(old).max() < 1e-4 and mem.novelty(torch.randn(5, 16)).min() > 0.2
    w = torch.randn(16, 4)
    grad = torch.randn(16, 4)
    moved = w - 0.5 * mem.project(grad, 1.0)
    assert torch.allclose(old @ moved, old @ w, atol=1e-3)  # what old inputs produce is kept
    assert not torch.allclose(moved, w)  # while the layer still learns elsewhere


def test_forgetting_report_numbers():
    r = forgetting_report([[0.9, 0.1, 0.0], [0.6, 0.95, 0.1], [0.5, 0.9, 0.8]])
    assert r.average == pytest.approx((0.5 + 0.9 + 0.8) / 3)
    assert r.backward_transfer == pytest.approx(((0.5 - 0.9) + (0.9 - 0.95)) / 2)
    assert r.forgetting == pytest.approx((0.4 + 0.05) / 2)
    assert r.forgetting_auc == pytest.approx((0.3 + 0.225) / 2)


def test_trc_keeps_what_naive_fine_tuning_forgets():
    """Class-incremental split digits, a short schedule: trc remembers earlier tasks, naive does not."""
    cfg = ContinualConfig(epochs=4)
    trc = run_method("split-digits", "trc", cfg, 0, ("per-task",))["per-task"]
    naive = run_method("split-digits", "naive", cfg, 0)
    assert naive["per-task"]["acc"] < 0.3 and naive["per-task"]["forgetting"] > 0.8
    assert naive["mixed"] == naive["per-task"]  # each sample scored on its own: the order cannot matter
    assert trc["acc"] > 0.85 and trc["forgetting"] < 0.1, (trc["acc"], trc["forgetting"])


def test_the_mixed_stream_holds_every_test_sample_once_in_one_order_per_seed():
    tasks = digits_tasks("split-digits")
    a, b, other = MixedStream.of(tasks, 0), MixedStream.of(tasks, 0), MixedStream.of(tasks, 1)
    assert np.array_equal(a.x, b.x) and not np.array_equal(a.x, other.x)
    assert np.array_equal(np.bincount(a.task), [len(t.test_x) for t in tasks])
    assert len(np.unique(a.task[:40])) == len(tasks)  # mixed from the start, not task after task
    for i, t in enumerate(tasks):
        assert sorted(map(tuple, a.x[a.task == i])) == sorted(map(tuple, t.test_x))


WRITER = """
import json, sys, torch
from pathlib import Path
from memory import save_learner_memory
sys.path.insert(0, {tests!r})
from test_continual import _trained_trc, _reads
learner = _trained_trc(steps=5)
run_dir = Path(sys.argv[1])
step = 0
while True:
    for _ in range(3):
        learner.step(torch.rand(32, 64), torch.randint(0, 10, (32,)), 0, True)
    learner.spectral.consolidate()
    step += 1
    # print before saving: a kill that lands after the save's commit must still find its reads printed
    print(json.dumps({{"step": step, "reads": _reads(learner)}}), flush=True)
    cache, columns = learner.memory_blocks()
    save_learner_memory(run_dir, cache, columns, step)
"""


def _reads(learner: TRC) -> dict:
    """What the memories answer: the entries, a seeded sample, novelty of fixed inputs."""
    state = learner.cache.rng.bit_generator.state
    sample = learner.cache.sample(6)
    learner.cache.rng.bit_generator.state = state
    kept = learner.cache.data
    novelty = [mems[m].novelty(torch.ones(1, mems[m].dim)).item()
               for mems in learner.spectral.memories.values() for m in (0, 3)]
    return {"labels": kept["labels"][: learner.cache.size].tolist(), "x": kept["x"][: learner.cache.size].sum().item(),
            "owners": [[t, m] for t, m in sorted(learner.owners.items())],
            "sample": sample["x"].sum().item(), "size": learner.cache.size, "novelty": novelty,
            "ranks": [mem.basis.shape[1] for mem in learner.spectral.columns()]}


def test_sigkilled_learner_memory_comes_back_from_zarr_with_the_same_reads(tmp_path):
    from memory import load_learner_memory

    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", WRITER.format(tests=str(ROOT / "tests")), str(tmp_path)],
                            stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    seen = {}
    deadline = time.time() + 120
    while len(seen) < 4 and time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("{"):
            rec = json.loads(line)
            seen[rec["step"]] = rec["reads"]
    time.sleep(0.15)  # land the kill somewhere inside a later save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for line in proc.stdout:
        if line.startswith("{"):
            rec = json.loads(line)
            seen[rec["step"]] = rec["reads"]
    saved = load_learner_memory(tmp_path)
    assert saved is not None and saved.step in seen, (saved and saved.step, sorted(seen))
    resumed = TRC(TRCConfig(), seed=99)  # a fresh learner: everything read comes from the store
    resumed.load_memory(saved)
    assert _reads(resumed) == seen[saved.step]
