"""The policy: an actor-critic (PPO) that acts on percepts and learns from the reward stream."""

from agent.config import PPOConfig
from agent.policy.ppo import PPO, ActorCritic

__all__ = ["PPO", "ActorCritic", "PPOConfig"]
