"""Learning is checked by learning: the policy must raise its return on real environments."""

import gymnasium as gym
import numpy as np

from agent.policy.ppo import PPO, PPOConfig


def _train(env_id: str, steps: int, seed: int, num_envs: int = 8) -> tuple[float, float]:
    """Train PPO on the state vector; returns (mean return of the first 20, of the last 20 episodes)."""
    envs = [gym.make(env_id) for _ in range(num_envs)]
    space = envs[0].action_space
    discrete = hasattr(space, "n")
    obs = np.stack([e.reset(seed=seed * 100 + i)[0] for i, e in enumerate(envs)]).astype(np.float32)
    ppo = PPO(obs.shape[1], int(space.n) if discrete else space.shape[0], discrete, num_envs,
              PPOConfig.for_actions(discrete), total_steps=steps,
              action_low=None if discrete else space.low, action_high=None if discrete else space.high,
              seed=seed)
    reward, done = np.zeros(num_envs), np.zeros(num_envs, bool)
    running, returns = np.zeros(num_envs), []
    final_index, final_obs = np.zeros(0, np.int64), obs[:0]
    for _ in range(steps // num_envs):
        action = ppo.act(obs, reward, done, final_index, final_obs)
        cut = []
        for i, env in enumerate(envs):
            o, reward[i], term, trunc, _ = env.step(int(action[i]) if discrete else action[i])
            running[i] += reward[i]
            done[i] = term or trunc
            if done[i]:
                returns.append(running[i])
                running[i] = 0.0
                if not term:
                    cut.append((i, o))
                o, _ = env.reset()
            obs[i] = o
        final_index = np.array([i for i, _ in cut], np.int64)
        final_obs = np.array([o for _, o in cut], np.float32).reshape(len(cut), obs.shape[1])
    return float(np.mean(returns[:20])), float(np.mean(returns[-20:]))


def test_ppo_learns_cartpole_discrete():
    first, last = _train("CartPole-v1", 40_000, seed=1)
    assert first < 50  # a random policy balances ~20 steps
    assert last >= 250, f"mean return of the last 20 episodes {last:.1f}"


def test_ppo_learns_inverted_pendulum_continuous():
    first, last = _train("InvertedPendulum-v5", 30_000, seed=1)
    assert first < 30
    assert last >= 200, f"mean return of the last 20 episodes {last:.1f}"


def test_world_model_learns_cartpole_dynamics():
    from agent.learner.world_model import LearnerConfig, WorldModelTrainer

    env = gym.make("CartPole-v1")
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    rows = []
    for _ in range(3000):
        a = int(rng.integers(2))
        nxt, r, term, trunc, _ = env.step(a)
        rows.append((obs, np.eye(2, dtype=np.float32)[a], r, nxt, term or trunc))
        obs = env.reset()[0] if term or trunc else nxt
    p, a, r, n, d = (np.array(c, dtype=np.float32 if i < 4 else bool) for i, c in enumerate(zip(*rows)))
    trainer = WorldModelTrainer(4, 2, LearnerConfig(batch_size=128), seed=0)
    trainer.add(p, a, r, n, d)
    assert trainer.size == int((~d).sum())
    trainer.train_step()
    first = trainer.losses["next_percept_mse"]
    for _ in range(400):
        trainer.train_step()
    assert trainer.losses["next_percept_mse"] < 0.2 * first
    assert trainer.losses["reward_mse"] < 0.05  # reward is always 1 on kept transitions
