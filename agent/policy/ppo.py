"""Proximal Policy Optimization over a batch of streaming envs, discrete or continuous actions.

The algorithm follows Schulman et al. 2017 (clipped surrogate, GAE of Schulman et al. 2016) as
written in CleanRL's ``ppo.py``; defaults are the rl-zoo CartPole-v1 settings, which solve it in
about 1e5 steps. Unlike CleanRL's loop, :meth:`PPO.act` is *called* by a stream: each call brings
the next observation plus the reward and done flag of the previous action, so the same object
serves an actor fed by a channel and a plain in-process loop.
"""

from __future__ import annotations

import copy
import threading
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.distributions import Categorical, Normal

from agent.config import PPOConfig
from agent.optim import Adam




def _layer(inp: int, out: int, std: float = 2**0.5) -> nn.Linear:
    layer = nn.Linear(inp, out)
    nn.init.orthogonal_(layer.weight, std)
    nn.init.zeros_(layer.bias)
    return layer


class ActorCritic(nn.Module):
    """Separate tanh MLPs for the policy and the value, as in CleanRL."""

    def __init__(self, obs_dim: int, action_dim: int, discrete: bool, hidden: int = 64) -> None:
        super().__init__()
        self.discrete = discrete
        self.critic = nn.Sequential(
            _layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(), _layer(hidden, 1, 1.0)
        )
        self.actor = nn.Sequential(
            _layer(obs_dim, hidden), nn.Tanh(), _layer(hidden, hidden), nn.Tanh(),
            _layer(hidden, action_dim, 0.01),
        )
        if not discrete:
            self.log_std = nn.Parameter(torch.zeros(action_dim))

    def dist(self, obs: torch.Tensor) -> Categorical | Normal:
        out = self.actor(obs)
        if self.discrete:
            return Categorical(logits=out)
        return Normal(out, self.log_std.exp().expand_as(out))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def log_prob(self, d: Categorical | Normal, action: torch.Tensor) -> torch.Tensor:
        lp = d.log_prob(action)
        return lp if self.discrete else lp.sum(-1)


class _ReturnScaler:
    """Running std of the discounted return, to scale rewards (as gymnasium's NormalizeReward)."""

    def __init__(self, num_envs: int, gamma: float) -> None:
        self.gamma = gamma
        self.ret = np.zeros(num_envs)
        self.count, self.mean, self.m2 = 1e-4, 0.0, 0.0

    def __call__(self, reward: np.ndarray, done: np.ndarray) -> np.ndarray:
        self.ret = self.ret * self.gamma + reward
        for x in self.ret:
            self.count += 1
            delta = x - self.mean
            self.mean += delta / self.count
            self.m2 += delta * (x - self.mean)
        self.ret[done] = 0.0
        return reward / np.sqrt(self.m2 / self.count + 1e-8)


class PPO:
    """A PPO learner fed one batched step at a time; updates after every ``num_steps`` calls."""

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        discrete: bool,
        num_envs: int,
        cfg: PPOConfig | None = None,
        total_steps: int | None = None,
        action_low: np.ndarray | None = None,
        action_high: np.ndarray | None = None,
        seed: int = 0,
    ) -> None:
        self.cfg = cfg = cfg or PPOConfig()
        torch.manual_seed(seed)
        self.num_envs, self.discrete = num_envs, discrete
        self.net = ActorCritic(obs_dim, action_dim, discrete, cfg.hidden)
        # the net that learns: the acting net itself, or a copy whose weights are swapped in after each update
        self.train_net = copy.deepcopy(self.net) if cfg.background_update else self.net
        self.opt = Adam(self.train_net.parameters(), lr=cfg.learning_rate, eps=1e-5)
        self.lock = threading.Lock()  # acting and the weight swap take turns
        self.thread: threading.Thread | None = None
        self.num_updates = (
            max(1, total_steps // (cfg.num_steps * num_envs)) if total_steps else None
        )
        self.low = None if action_low is None else torch.as_tensor(action_low, dtype=torch.float32)
        self.high = None if action_high is None else torch.as_tensor(action_high, dtype=torch.float32)
        self.scaler = _ReturnScaler(num_envs, cfg.gamma) if cfg.normalize_reward else None
        T, N = cfg.num_steps, num_envs
        self.obs = torch.zeros(T, N, obs_dim)
        self.actions = torch.zeros((T, N) if discrete else (T, N, action_dim))
        self.logprobs, self.values = torch.zeros(T, N), torch.zeros(T, N)
        self.rewards, self.dones = torch.zeros(T, N), torch.zeros(T, N)
        self.t = 0  # next buffer slot
        self.next_done = torch.zeros(N)
        self.updates = 0
        self.last_losses: dict[str, float] = {}
        self._checkpoint = self._snapshot()

    @torch.no_grad()
    def act(self, obs: np.ndarray, reward: np.ndarray, done: np.ndarray,
            final_index: np.ndarray | None = None, final_obs: np.ndarray | None = None) -> np.ndarray:
        """Record ``reward``/``done`` of the previous action, update if a rollout is complete,
        and return actions for ``obs`` (int64 [N] or float32 [N, A], clipped to the bounds).

        Envs in ``final_index`` were cut off by a time limit in state ``final_obs``: their reward
        gets ``gamma * V(final_obs)`` added, so a time limit is not learned as a failure
        (Pardo et al. 2018, "Time Limits in Reinforcement Learning").
        """
        obs_t = torch.from_numpy(np.array(obs, dtype=np.float32))
        if self.t > 0:  # the previous slot's action has now been rewarded
            r = np.asarray(reward, dtype=np.float64)
            if self.scaler is not None:
                r = self.scaler(r, np.asarray(done, dtype=bool))
            r = torch.as_tensor(r, dtype=torch.float32)
            if final_index is not None and len(final_index):
                final_v = self.net.value(torch.from_numpy(np.array(final_obs, dtype=np.float32)))
                r[torch.from_numpy(np.array(final_index, dtype=np.int64))] += self.cfg.gamma * final_v
            self.rewards[self.t - 1] = r
        self.next_done = torch.as_tensor(np.asarray(done, dtype=np.float32))
        if self.t == self.cfg.num_steps:
            rollout = self._rollout(obs_t)
            if self.cfg.background_update:
                self.wait()  # one update at a time; the previous one had a whole rollout's time
                self.thread = threading.Thread(target=self._update, args=(rollout,), name="ppo-update", daemon=True)
                self.thread.start()
            else:
                self._update(rollout)
            self.t = 0
        with self.lock:
            d = self.net.dist(obs_t)
            action = d.sample()
            self.logprobs[self.t] = self.net.log_prob(d, action)
            self.values[self.t] = self.net.value(obs_t)
        self.obs[self.t], self.dones[self.t] = obs_t, self.next_done
        self.actions[self.t] = action
        self.t += 1
        if self.discrete:
            return action.numpy().astype(np.int64)
        if self.low is not None:
            action = torch.maximum(torch.minimum(action, self.high), self.low)
        return action.numpy().astype(np.float32)

    def _rollout(self, next_obs: torch.Tensor) -> dict[str, torch.Tensor]:
        """A copy of the finished rollout (the buffers are refilled while it is learned from)."""
        names = ("obs", "actions", "logprobs", "values", "rewards", "dones", "next_done")
        return {name: getattr(self, name).clone() for name in names} | {"next_obs": next_obs}

    def _snapshot(self) -> dict[str, Any]:
        """Copies of the learning net's weights, the optimizer state and the update count."""
        return {"net": copy.deepcopy(self.train_net.state_dict()), "optimizer": copy.deepcopy(self.opt.state_dict()),
                "updates": self.updates}

    def checkpoint(self) -> dict[str, Any]:
        """The state as of the last finished update: a copy made when it finished, so taking a
        checkpoint mid-run never waits for (or reads half of) a running update."""
        with self.lock:
            return self._checkpoint

    def load_checkpoint(self, state: dict[str, Any]) -> None:
        """Continue from a :meth:`checkpoint` (a resumed run)."""
        self.wait()
        with self.lock:
            self.net.load_state_dict(state["net"])
            self.train_net.load_state_dict(state["net"])
            self.opt.load_state_dict(state["optimizer"])
            self.updates = int(state["updates"])
            self._checkpoint = self._snapshot()

    def wait(self) -> None:
        """Return once no background update is running."""
        if self.thread is not None:
            self.thread.join()
            self.thread = None

    @torch.enable_grad()
    def _update(self, ro: dict[str, torch.Tensor]) -> None:
        cfg, T, net = self.cfg, self.cfg.num_steps, self.train_net
        if cfg.anneal_lr and self.num_updates:
            frac = max(0.0, 1.0 - self.updates / self.num_updates)
            self.opt.param_groups[0]["lr"] = frac * cfg.learning_rate
        with torch.no_grad():  # generalized advantage estimation, with the values the rollout was acted on
            next_value = net.value(ro["next_obs"])
            adv = torch.zeros_like(ro["rewards"])
            last = torch.zeros(self.num_envs)
            for t in reversed(range(T)):
                if t == T - 1:
                    nonterminal, next_v = 1.0 - ro["next_done"], next_value
                else:
                    nonterminal, next_v = 1.0 - ro["dones"][t + 1], ro["values"][t + 1]
                delta = ro["rewards"][t] + cfg.gamma * next_v * nonterminal - ro["values"][t]
                last = delta + cfg.gamma * cfg.gae_lambda * nonterminal * last
                adv[t] = last
            returns = adv + ro["values"]
        b_obs = ro["obs"].flatten(0, 1)
        b_act = ro["actions"].flatten(0, 1)
        b_logp, b_adv = ro["logprobs"].flatten(), adv.flatten()
        b_ret, b_val = returns.flatten(), ro["values"].flatten()
        batch = b_obs.shape[0]
        mb = batch // cfg.num_minibatches
        for _ in range(cfg.update_epochs):
            perm = torch.randperm(batch)
            for start in range(0, batch, mb):
                idx = perm[start : start + mb]
                d = net.dist(b_obs[idx])
                logp = net.log_prob(d, b_act[idx])
                ratio = (logp - b_logp[idx]).exp()
                a = b_adv[idx]
                a = (a - a.mean()) / (a.std() + 1e-8)
                pg_loss = torch.max(-a * ratio, -a * ratio.clamp(1 - cfg.clip_coef, 1 + cfg.clip_coef)).mean()
                v_loss = 0.5 * (net.value(b_obs[idx]) - b_ret[idx]).pow(2).mean()
                entropy = d.entropy()
                entropy = (entropy if self.discrete else entropy.sum(-1)).mean()
                loss = pg_loss - cfg.ent_coef * entropy + cfg.vf_coef * v_loss
                self.opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), cfg.max_grad_norm)
                self.opt.step()
        if net is not self.net:  # swap the learned weights in for acting
            with self.lock, torch.no_grad():
                for acting, learned in zip(self.net.parameters(), net.parameters()):
                    acting.copy_(learned)
        self.updates += 1
        snapshot = self._snapshot()
        with self.lock:
            self._checkpoint = snapshot
        with torch.no_grad():
            explained = 1 - (b_ret - b_val).var() / (b_ret.var() + 1e-8)
        self.last_losses = {
            "policy_loss": pg_loss.item(), "value_loss": v_loss.item(),
            "entropy": entropy.item(), "explained_variance": explained.item(),
        }
