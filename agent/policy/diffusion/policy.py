"""A trained diffusion policy acting on a batch of envs: observation history, chunks, receding horizon.

    >>> policy = DiffusionPolicy.load(Path("reach.pt"), SamplerConfig(steps=16, cache="sencache"))
    >>> policy.reset(num_envs=8, seeds=range(8))
    >>> actions = policy.act(states)              # (8, 39) → (8, 4), one step of every env

Each env keeps its last ``obs_horizon`` states and a queue of planned actions. An env whose queue is
empty gets a new chunk sampled from its state window, and the first ``n_action`` of the chunk's
``horizon`` actions are queued; envs that need a chunk at the same step are sampled as one batch.
The initial noise of env i's chunks comes from its own generator, seeded by ``reset``, so an
episode's chunks do not depend on which other envs it shares a batch with (for DDIM; DDPM's per-step
noise comes from one shared generator). Every sampled batch is timed into ``chunks`` (a bounded log).
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.checkpoints import load_tensors
from agent.policy.diffusion.config import DiffusionConfig
from agent.policy.diffusion.data import Normalizer
from agent.policy.diffusion.noise import NoiseSchedule
from agent.policy.diffusion.sampler import Sampler, SamplerConfig
from agent.policy.diffusion.step_cache import Sensitivity
from agent.policy.diffusion.unet import Denoiser

SEEN_KEPT = 4096
CHUNKS_KEPT = 10_000  # sampled batches whose timings are kept: a run of any length holds at most these
KIND = "diffusion-policy"  # the checkpoint's "kind", so that another file is refused in one line


class PolicyFileError(ValueError):
    """A file that is not a diffusion policy checkpoint, or one made for other spaces."""


@dataclass
class DiffusionCheckpoint:
    """What `thalamus train policy` writes: the EMA weights and everything needed to act and to cache."""

    config: DiffusionConfig
    weights: dict[str, torch.Tensor]
    normalizer: Normalizer
    beta: float  # SeaCache's clean-spectrum slope, fitted to the demonstrations' actions
    sensitivity: Sensitivity | None  # SenCache's table
    provenance: dict[str, Any] = field(default_factory=dict)  # data, settings, seeds, scores

    def to_dict(self) -> dict[str, Any]:
        return {"kind": KIND, "config": self.config.to_dict(), "weights": self.weights,
                "normalizer": self.normalizer.to_dict(), "beta": self.beta,
                "sensitivity": self.sensitivity.to_dict() if self.sensitivity is not None else None,
                "provenance": self.provenance}

    @classmethod
    def read(cls, path: Path) -> DiffusionCheckpoint:
        """PolicyFileError (one line) for a missing file or one that is not a diffusion policy."""
        if not path.is_file():
            raise PolicyFileError(f"{path}: no such file (make one with `thalamus train policy --out {path}`)")
        try:
            d = load_tensors(path)
        except Exception as exc:  # a torn or foreign file: the checkpoint loader's one line
            raise PolicyFileError(f"{path}: not a diffusion policy checkpoint ({exc})") from None
        if not isinstance(d, dict) or d.get("kind") != KIND:
            raise PolicyFileError(f"{path}: not a diffusion policy checkpoint (make one with `thalamus train policy`)")
        table = d.get("sensitivity")
        return cls(DiffusionConfig.from_dict(d["config"]), d["weights"], Normalizer.from_dict(d["normalizer"]),
                   float(d["beta"]), Sensitivity.from_dict(table) if table else None, d.get("provenance", {}))


@dataclass
class ChunkTiming:
    """One sampled batch of chunks: its size, wall time and body evaluations per chunk."""

    batch: int
    ms: float
    nfe: list[int]


class ChunkLog:
    """Every sampled batch counted; the last ``CHUNKS_KEPT`` kept for their times and body counts."""

    def __init__(self) -> None:
        self.recent: deque[ChunkTiming] = deque(maxlen=CHUNKS_KEPT)
        self.chunks = self.body_evals = 0  # over every batch ever sampled

    def add(self, timing: ChunkTiming) -> None:
        self.recent.append(timing)
        self.chunks += len(timing.nfe)
        self.body_evals += sum(timing.nfe)

    def nfe(self) -> list[int]:
        """Body evaluations of each chunk of the kept batches."""
        return [n for c in self.recent for n in c.nfe]

    def summary(self) -> dict[str, Any]:
        """Chunks sampled, body evaluations per chunk (over all of them), and ms per sampling call
        (p50, p99 over the kept ones); None where nothing was sampled yet."""
        ms = [c.ms for c in self.recent]
        return {"chunks": self.chunks, "nfe_per_chunk": self.body_evals / self.chunks if self.chunks else None,
                "ms_p50": float(np.percentile(ms, 50)) if ms else None,
                "ms_p99": float(np.percentile(ms, 99)) if ms else None}


class DiffusionPolicy:
    """Acts for ``num_envs`` envs at once with a checkpoint's denoiser under a sampler config."""

    def __init__(self, ckpt: DiffusionCheckpoint, sampler: SamplerConfig, device: str = "cpu") -> None:
        self.ckpt = ckpt
        model = Denoiser(ckpt.config)
        try:
            model.load_state_dict(ckpt.weights)
        except RuntimeError:
            raise PolicyFileError("the checkpoint's weights do not fit its own config (a damaged file, or one "
                                  "from another version of thalamus): train it again") from None
        self.model = model.to(device).eval()
        self._start(ckpt.config, ckpt.normalizer, Sampler(self.model, NoiseSchedule(ckpt.config.levels), sampler,
                                                          ckpt.beta, None if ckpt.sensitivity is None
                                                          else ckpt.sensitivity.to(device)), device)

    @classmethod
    def from_sampler(cls, cfg: DiffusionConfig, normalizer: Normalizer, sampler: Any,
                     device: str = "cpu") -> DiffusionPolicy:
        """A policy acting through any ``sampler`` with :class:`Sampler`'s ``sample(obs, generator,
        noise=…) → (chunks, evaluations)`` (a learner that is not one checkpoint's denoiser)."""
        policy = cls.__new__(cls)
        policy._start(cfg, normalizer, sampler, device)
        return policy

    def _start(self, cfg: DiffusionConfig, normalizer: Normalizer, sampler: Any, device: str) -> None:
        self.cfg, self.normalizer, self.sampler, self.device = cfg, normalizer, sampler, torch.device(device)
        self.chunks = ChunkLog()
        self.seen: list[torch.Tensor] = []  # the first SEEN_KEPT observation windows planned on (to time chunks on)
        self.reset(1)

    @classmethod
    def load(cls, path: Path, sampler: SamplerConfig, device: str = "cpu") -> DiffusionPolicy:
        return cls(DiffusionCheckpoint.read(path), sampler, device)

    def reset(self, num_envs: int, seeds: Any = None) -> None:
        """Forget every env's history and plan; env i's noise generator is seeded with ``seeds[i]``."""
        seeds = list(seeds) if seeds is not None else list(range(num_envs))
        self.history: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self.queue: list[list[np.ndarray]] = [[] for _ in range(num_envs)]
        self.generators = [torch.Generator(device=self.device).manual_seed(int(s)) for s in seeds]

    def reset_env(self, i: int, seed: int) -> None:
        """Env ``i`` starts a new episode."""
        self.history[i], self.queue[i] = [], []
        self.generators[i] = torch.Generator(device=self.device).manual_seed(int(seed))

    def act(self, states: np.ndarray, active: np.ndarray | None = None) -> np.ndarray:
        """The next action of every env (B, action_dim) for their current states (B, obs_dim);
        envs where ``active`` is False are not stepped (their row is zeros)."""
        cfg, n = self.cfg, len(states)
        active = np.ones(n, bool) if active is None else active
        normed = self.normalizer(np.asarray(states, np.float32))
        for i in np.flatnonzero(active):
            h = self.history[i]
            h.append(normed[i])
            while len(h) < cfg.obs_horizon:
                h.insert(0, normed[i])
            del h[:-cfg.obs_horizon]
        need = [i for i in np.flatnonzero(active) if not self.queue[i]]
        if need:
            self._plan(need)
        out = np.zeros((n, cfg.action_dim), np.float32)
        for i in np.flatnonzero(active):
            out[i] = self.queue[i].pop(0)
        return out

    def windows(self) -> torch.Tensor:
        """The observation windows kept in ``seen``, stacked (N, obs_horizon·obs_dim)."""
        return torch.stack(self.seen)

    def _plan(self, envs: list[int]) -> None:
        cfg = self.cfg
        windows = torch.from_numpy(np.stack([np.concatenate(self.history[i]) for i in envs]))
        if len(self.seen) < SEEN_KEPT:
            self.seen.extend(windows[:SEEN_KEPT - len(self.seen)])
        obs = windows.to(self.device)
        noise = torch.stack([torch.randn((cfg.horizon, cfg.action_dim), generator=self.generators[i],
                                         device=self.device) for i in envs])
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        chunk, nfe = self.sampler.sample(obs, self.generators[envs[0]], noise=noise)
        chunk = chunk.cpu().numpy()  # (waits for the device)
        self.chunks.add(ChunkTiming(len(envs), (time.perf_counter() - t0) * 1e3, nfe.tolist()))
        for row, i in enumerate(envs):
            self.queue[i] = list(chunk[row, :cfg.n_action].clip(-1, 1))
