"""A diffusion policy as `thalamus eval` plays it: one env, one observation at a time.

Episode k of a task samples its chunks' noise from a generator seeded with k, as
`agent.policy.diffusion.rollout` does, so `thalamus eval` and `thalamus bench policy` play the same
episodes. Frames are not rendered (``EnvOptions(frames=False)``): the policy reads the state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium
import numpy as np

from agent.evaluation import EvalTask, EvaluationError, LoadedPolicy
from agent.policy.diffusion.policy import DiffusionCheckpoint, DiffusionPolicy, PolicyFileError
from agent.policy.diffusion.sampler import SamplerConfig
from envs.options import EnvOptions


class DiffusionEvalPolicy:
    """`agent.evaluation.Policy` for a diffusion checkpoint under a sampler config."""

    def __init__(self, policy: DiffusionPolicy) -> None:
        self.policy = policy
        self.episode = 0

    def begin_task(self, task: EvalTask, env: gymnasium.Env) -> None:
        cfg = self.policy.cfg
        state = env.observation_space["state"].shape
        action = env.action_space.shape
        if not isinstance(env.action_space, gymnasium.spaces.Box) or state != (cfg.obs_dim,) or action != (cfg.action_dim,):
            raise EvaluationError(f"{task.name} has states of shape {state} and actions {env.action_space}; the "
                                  f"diffusion policy was trained on {cfg.obs_dim} state floats and {cfg.action_dim} "
                                  "continuous actions")
        self.episode = 0

    def begin_episode(self) -> None:
        self.policy.reset(1, [self.episode])
        self.episode += 1

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        return self.policy.act(obs["state"][None])[0]

    def chunk_report(self) -> dict[str, Any]:
        """Body evaluations per chunk and ms per chunk over the chunks sampled so far."""
        log = self.policy.chunks.summary()
        return {"nfe_per_chunk": log["nfe_per_chunk"], "ms_per_chunk_p50": log["ms_p50"],
                "ms_per_chunk_p99": log["ms_p99"], "chunks": log["chunks"], "sampler": self.policy.sampler.cfg.name}


def load_diffusion(path: Path, sampler: SamplerConfig) -> LoadedPolicy:
    """``--policy diffusion:PATH``; EvaluationError (one line) for a file that is not one."""
    try:
        ckpt = DiffusionCheckpoint.read(Path(path))
        policy = DiffusionPolicy(ckpt, sampler)
    except (PolicyFileError, ValueError) as exc:
        raise EvaluationError(f"--policy diffusion:{path}: {exc}") from None
    return LoadedPolicy(DiffusionEvalPolicy(policy), frame_size=8, options=EnvOptions(frames=False),
                        env_id=ckpt.provenance.get("env_id"), sequence=None, source=str(path))
