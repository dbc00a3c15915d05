"""The diffusion policy: its sampler against plain DDIM/DDPM, the step caches' decisions, and learning
a one-task demonstration set on the CPU."""

import functools
import json
from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest
import torch

from agent.demonstrations import DemoTasks, record_expert
from agent.policy.diffusion.config import DiffusionConfig, PolicyTrainConfig
from agent.policy.diffusion.cuda_graphs import GraphedSampler
from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.sampler import Sampler, SamplerConfig, make_cache
from agent.policy.diffusion.sensitivity import estimate_sensitivity
from agent.policy.diffusion.step_cache import SeaCache, SenCache, Sensitivity, sea_gain
from agent.policy.diffusion.unet import Denoiser
from envs.options import EnvOptions
from launch.train_policy_cmd import DEFAULTS
from memory import write_manifest
from conftest import one_clear_line, run_main

TINY = DiffusionConfig(obs_dim=5, action_dim=3, down_dims=(8, 16), groups=4, time_dim=16)


def _tiny(seed: int = 0) -> Denoiser:
    torch.manual_seed(seed)
    return Denoiser(TINY).eval()


@pytest.mark.parametrize("steps", [1, 7, 16])
def test_sampler_without_cache_is_plain_ddim_exactly(steps):
    model, schedule = _tiny(), NoiseSchedule(100)
    obs, noise = torch.randn(3, 10), torch.randn(3, 16, 3)
    out, nfe = Sampler(model, schedule, SamplerConfig(steps=steps)).sample(obs, noise=noise)
    x, ts = noise.clone(), schedule.ddim_timesteps(steps)
    with torch.no_grad():
        for i, t in enumerate(ts):
            eps = model(x, torch.full((3,), t), obs)
            x = schedule.ddim_step(x, eps, t, ts[i + 1] if i + 1 < len(ts) else -1)
    assert torch.equal(out, x) and nfe.tolist() == [steps] * 3


def test_ddpm_sampler_is_plain_ancestral_sampling_exactly():
    model, schedule = _tiny(), NoiseSchedule(100)
    obs, noise = torch.randn(2, 10), torch.randn(2, 16, 3)
    out, nfe = Sampler(model, schedule, SamplerConfig(method="ddpm")).sample(
        obs, torch.Generator().manual_seed(4), noise=noise)
    g, x = torch.Generator().manual_seed(4), noise.clone()
    with torch.no_grad():
        for t in range(99, -1, -1):
            x = schedule.ddpm_step(x, model(x, torch.full((2,), t), obs), t, g)
    assert torch.equal(out, x) and nfe.tolist() == [100, 100]


def _pattern(cache, steps: int = 16, batch: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Which steps ran the body (steps, batch) for the tiny model, and the chunks."""
    model, schedule = _tiny(), NoiseSchedule(100)
    sampler = Sampler(model, schedule, SamplerConfig(steps=steps))
    sampler.cache = cache
    runs = []
    refresh = cache.refresh

    def spy(i, t, x, proxy):
        run = refresh(i, t, x, proxy)
        runs.append(run.clone())
        return run

    cache.refresh = spy
    g = torch.Generator().manual_seed(seed)
    out, nfe = sampler.sample(torch.randn(batch, 10, generator=g), noise=torch.randn(batch, 16, 3, generator=g))
    pattern = torch.stack(runs)
    assert torch.equal(pattern.sum(0), nfe)
    return pattern, out


@functools.cache
def _table(seed: int, scale: float = 1.0) -> Sensitivity:
    """SenCache's table for the tiny model over made-up smooth action chunks."""
    g = torch.Generator().manual_seed(seed)
    actions = (torch.sin(torch.linspace(0, 3, 16))[None, :, None] * torch.rand(32, 1, 3, generator=g) * scale).clamp(-1, 1)
    return estimate_sensitivity(_tiny(), NoiseSchedule(100), torch.randn(32, 10, generator=g), actions, stride=6,
                                generator=g)


def test_sencache_table_is_measured_from_data_and_sets_the_skip_pattern():
    table = _table(0)
    for column in (table.j_x, table.j_t, table.r_norm):
        assert torch.isfinite(column).all() and (column > 0).all()
    assert table.j_x.std() > 0.05 * table.j_x.mean()  # it varies with the noise level
    flat = Sensitivity(torch.full_like(table.j_x, float(table.j_x.mean())), torch.full_like(table.j_t, float(table.j_t.mean())),
                       table.r_norm)
    measured, _ = _pattern(SenCache(table, eps=0.5, max_skips=15))
    uniform, _ = _pattern(SenCache(flat, eps=0.5, max_skips=15))
    assert not torch.equal(measured, uniform)
    other, _ = _pattern(SenCache(_table(1, 0.2), eps=0.5, max_skips=15))
    assert not torch.equal(measured, other)  # other data, another table, other decisions


def test_sencache_keeps_first_and_last_steps_and_at_most_k_skips():
    table = _table(0)
    for k in (1, 2, 3):
        pattern, _ = _pattern(SenCache(table, eps=1e6, max_skips=k))  # an ε that would skip everything
        assert pattern[0].all() and pattern[-1].all()
        for column in pattern.T.tolist():
            gaps = "".join("1" if r else "0" for r in column).split("1")
            assert max(len(g) for g in gaps) == k
    loose, _ = _pattern(SenCache(table, eps=1.0, max_skips=15))
    tight, _ = _pattern(SenCache(table, eps=0.01, max_skips=15))
    assert loose.sum() < tight.sum()


def test_seacache_gain_and_threshold():
    gain = sea_gain(16, a=0.05, b=0.999, beta=2.0)
    assert gain.mean().item() == pytest.approx(1.0) and gain[0] > 10 * gain[-1]  # noisy: keeps low frequencies
    clean = sea_gain(16, a=0.999, b=0.04, beta=2.0)
    assert clean.max() / clean.min() < 1.1  # nearly clean: nearly flat
    schedule = NoiseSchedule(100)
    runs = [_pattern(SeaCache(schedule, delta, beta=2.0))[0] for delta in (0.05, 0.5, 5.0)]
    for pattern in runs:
        assert pattern[0].all() and pattern[-1].all()
    counts = [int(p.sum()) for p in runs]
    assert counts[0] > counts[1] > counts[2] == 2 * 4  # δ past any change: only the first and last steps


def test_cached_chunks_stay_close_to_ddim():
    model, schedule = _tiny(), NoiseSchedule(100)
    obs, noise = torch.randn(8, 10), torch.randn(8, 16, 3)
    ref, _ = Sampler(model, schedule, SamplerConfig(steps=16)).sample(obs, noise=noise)
    sea, nfe = Sampler(model, schedule, SamplerConfig(steps=16, cache="seacache", threshold=0.3),
                       beta=2.0).sample(obs, noise=noise)
    assert nfe.float().mean() < 16
    assert (sea - ref).abs().max() < 0.5 * ref.abs().max()


@pytest.mark.parametrize("cache", ["none", "seacache", "sencache"])
def test_graph_program_takes_the_eager_samplers_decisions(cache):
    """The GPU's graph program (here run eagerly, as it is recorded) gives every sample the eager
    sampler's chunk and body count, twice in a row (no state left from the last chunk), though it runs
    the body on the whole batch and merges by mask where the eager one runs it on the refreshing subset."""
    model, schedule = _tiny(), NoiseSchedule(100)
    cfg = SamplerConfig(steps=16, cache=cache, threshold={"none": None, "seacache": 0.3, "sencache": 0.5}[cache])
    table = _table(0) if cache == "sencache" else None
    eager = Sampler(model, schedule, cfg, beta=2.0, table=table)
    times = [eager._time_features(t, 8, torch.device("cpu")) for t in eager.timesteps]
    graphed = GraphedSampler(model, schedule, eager.timesteps, times, make_cache(cfg, schedule, 2.0, table), 8,
                             capture=False)
    g = torch.Generator().manual_seed(3)
    for _ in range(2):
        obs, noise = torch.randn(8, 10, generator=g), torch.randn(8, 16, 3, generator=g)
        ref, ref_nfe = eager.sample(obs, noise=noise)
        out, nfe = graphed.sample(obs, noise)
        assert torch.equal(nfe, ref_nfe)
        torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)
    if cache != "none":
        assert 2 < ref_nfe.float().mean() < 16 and ref_nfe.min() < ref_nfe.max()  # partial batches were met


def test_the_chunk_log_of_a_long_run_stays_bounded_and_counts_every_chunk(monkeypatch):
    from agent.policy.diffusion import policy as policy_module

    monkeypatch.setattr(policy_module, "CHUNKS_KEPT", 3)
    log = policy_module.ChunkLog()
    for k in range(5):  # batches of 2 chunks: 16 and k evaluations, 10·k ms
        log.add(policy_module.ChunkTiming(2, 10.0 * k, [16, k]))
    assert len(log.recent) == 3 and log.nfe() == [16, 2, 16, 3, 16, 4]
    summary = log.summary()
    assert summary["chunks"] == 10 and summary["nfe_per_chunk"] == (5 * 16 + 0 + 1 + 2 + 3 + 4) / 10
    assert summary["ms_p50"] == 30.0  # over the kept batches (20, 30, 40 ms)


@pytest.fixture(scope="module")
def reach_demos(tmp_path_factory) -> Path:
    """30 scripted-expert episodes of reach-v3 (its goal moves: a policy needs a few dozen to generalise),
    frames not rendered (the policy reads the state)."""
    run_dir = tmp_path_factory.mktemp("demos") / "reach"
    write_manifest(run_dir, {"name": "reach", "source": "expert", "config": {"env_id": "Meta-World/reach-v3"}})
    record_expert(DemoTasks.of_env("Meta-World/reach-v3"), run_dir, episodes=30, frame_size=8, seed=0,
                  options=EnvOptions(frames=False))
    return run_dir


def test_a_tiny_policy_learns_reach_from_demonstrations(reach_demos, tmp_path):
    from agent.policy.diffusion.policy import DiffusionCheckpoint
    from agent.policy.diffusion.train import train_policy

    out = tmp_path / "reach.pt"
    tiny = DiffusionConfig(down_dims=(16, 32), time_dim=32, groups=4)  # 66 k parameters (the shipped: 225 k)
    cfg = PolicyTrainConfig(steps=300, batch=64, lr=3e-3, held_out=0.2, eval_episodes=4, eval_steps=8, model=tiny)
    m = train_policy(cfg, [reach_demos], out)
    assert m["train_episodes"] == 24 and m["heldout_episodes"] == 6
    # an untrained denoiser's noise-prediction error is ~1 (the noise's variance); on held-out episodes
    # this one's is a small fraction of it, and it reaches the goal from unseen starts (2 of 4 at least)
    assert m["heldout_loss"] < 0.15
    assert m["rollout_success"] >= 0.5
    ckpt = DiffusionCheckpoint.read(out)
    assert ckpt.provenance["data"] == [str(reach_demos)] and ckpt.provenance["train"]["steps"] == 300
    assert len(ckpt.provenance["episodes"]["held_out"]) == 6 and ckpt.sensitivity is not None
    assert ckpt.provenance["metrics"]["rollout_success"] == m["rollout_success"]


def test_train_policy_flags_default_to_its_config():
    cfg = PolicyTrainConfig()
    for name, value in DEFAULTS.items():
        assert getattr(cfg, name) == value, name
    assert {f.name for f in fields(cfg)} >= set(DEFAULTS)


@pytest.mark.parametrize("argv, expect", [
    (["train", "policy", "--data", "/no/such/run"], "no such run directory"),
    (["train", "policy", "--data", "{demos}", "--steps", "0"], "--steps and --batch must be positive"),
    (["train", "policy", "--data", "{demos}", "--task", "push-v3"], "no episodes of task 'push-v3'"),
    (["eval", "--policy", "diffusion:{demos}/run.json"], "not a thalamus checkpoint"),
    (["eval", "--policy", "diffusion:/no/such.pt"], "no such file"),
    (["eval", "--expert", "--env", "Meta-World/reach-v3", "--step-cache", "seacache"], "are for a diffusion policy"),
    (["eval", "--policy", "diffusion:x.pt", "--cache-threshold", "0.2"], "needs a step cache"),
    (["eval", "--policy", "diffusion:x.pt", "--ddim-steps", "101"], "DDIM steps must be 1..100"),
    (["bench", "policy", "--checkpoints", "/no/such/dir"], "no checkpoint /no/such/dir/reach-v3.pt"),
    (["bench", "policy", "--tasks", "CartPole-v1"], "is not a Meta-World id"),
    (["bench", "continual", "--benchmark", "mw-easy-imitation"], "give --data RUN_DIR"),
    (["bench", "continual", "--benchmark", "mw-easy-imitation", "--data", "{demos}"],
     "no episodes of task 'reach-v3'"),  # the store holds Meta-World/reach-v3 alone, not the sequence
    (["bench", "continual", "--benchmark", "mw-easy-imitation", "--data", "{demos}", "--methods", "gpm"],
     "unknown for mw-easy-imitation: gpm"),
    (["bench", "continual", "--benchmark", "mw-easy-imitation", "--data", "{demos}", "--held-out", "400"],
     "--held-out 400 for 5 tasks takes all of --memory 2000"),
    (["bench", "continual", "--benchmark", "mw-easy-imitation", "--data", "{demos}", "--practice", "-1"],
     "--practice must be at least 0"),
])
def test_bad_policy_input_is_one_clear_line(argv, expect, reach_demos, tmp_path, capsys):
    argv = [a.replace("{demos}", str(reach_demos)) for a in argv]
    one_clear_line(run_main(capsys, *argv, *(["--out", str(tmp_path / "p.pt")] if argv[0] == "train" else [])), expect)
    assert not (tmp_path / "p.pt").exists()
