"""The agent's wiring run in one process (the same actor classes the Ray run uses)."""

from dataclasses import replace

import numpy as np

from agent.config import AgentConfig
from agent.runtime import Agent
from memory import open_store


def test_in_process_agent_records_exactly_the_episode_budget(tmp_path):
    cfg = replace(AgentConfig(), env_id="Pendulum-v1", steps=None, episodes=3, num_envs=2, frame_size=32)
    summary = Agent(cfg, tmp_path, use_ray=False).run(progress_every_s=0.0)
    store = open_store(tmp_path)
    assert summary["episodes"] == store.n_episodes == 3  # the envs' unfinished episodes are not kept
    assert np.array_equal(store.episode_lengths, [200, 200, 200])  # Pendulum's time limit
    ep = store.get_episode(0)
    assert ep["frame"].shape == (200, 32, 32, 3) and ep["action"].shape == (200, 1)
    assert ep["truncated"][-1] and not ep["truncated"][:-1].any() and not ep["terminated"].any()
    assert np.all(np.diff(ep["time"]) >= 0)
    assert (tmp_path / "checkpoints" / "final.pt").exists()
    for hop in ("env→perception", "perception→policy", "policy→env"):
        assert summary["latency_ms"][hop]["count"] > 0


def test_steps_budget_commits_every_step_including_unfinished_episodes(tmp_path):
    cfg = replace(AgentConfig(), steps=300, num_envs=3, frame_size=16)
    summary = Agent(cfg, tmp_path, use_ray=False).run()
    store = open_store(tmp_path)
    assert summary["steps"] == store.n_steps == 300
    extra = store.n_episodes - summary["episodes"]  # each env's episode cut short by the budget
    assert 1 <= extra <= 3
    for i in range(summary["episodes"], store.n_episodes):
        ep = store.get_episode(i)
        assert ep["truncated"][-1] and not ep["terminated"].any()


def test_stored_captions_are_the_captioners_words_for_each_stored_frame(tmp_path):
    """Perception captions every frame, decoding off the acting path; the caption stored with a step is
    the one a fresh captioner gives when the stored frames are replayed in order (one env: one stream),
    and each step keeps how far its caption trailed it."""
    from agent.perception.live import LiveCaptioner, cpu_has_bf16, env_checkpoint

    checkpoint = env_checkpoint("CartPole-v1")
    cfg = replace(AgentConfig(), steps=120, num_envs=1, captioner=str(checkpoint))
    summary = Agent(cfg, tmp_path, use_ray=False).run()
    store = open_store(tmp_path)
    lags = np.concatenate([store.get_episode(i)["caption_lag"] for i in range(store.n_episodes)])
    assert len(lags) == 120 and lags.min() >= 0 and summary["caption_lag_steps"]["count"] == 120
    assert summary["caption_lag_steps"]["max"] == lags.max()
    frames = np.concatenate([store.get_episode(i)["frame"] for i in range(store.n_episodes)])
    stored = np.concatenate([store.get_episode(i)["caption"] for i in range(store.n_episodes)])
    replay = LiveCaptioner(checkpoint, cpu_bf16=cpu_has_bf16())  # as the run's CaptionActor on a CPU
    again = np.concatenate([replay.tokens(f[None]) for f in frames])
    assert len(frames) == 120 and np.array_equal(stored, again)
    assert len({replay.text(t) for t in stored}) > 1  # the pole and cart do not look the same all run
