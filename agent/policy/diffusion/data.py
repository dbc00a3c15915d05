"""Demonstrations → training windows: the last ``obs_horizon`` states and the next ``horizon`` actions.

Reads any run store (`thalamus record --expert` writes them, and so does `thalamus run`): every committed
episode of the chosen task, as Diffusion Policy builds its windows: at each step i the states of
steps i-1, i (the first repeated at an episode's start) and the actions of steps i..i+15 (the last
repeated past the episode's end). States are scaled to [-1, 1] by the training split's per-dimension
range (a constant dimension maps to 0); actions are already in [-1, 1].
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from memory import StoreError, open_store


class DemoDataError(ValueError):
    """Demonstrations that cannot be trained on; the message says what and what to do."""


@dataclass(frozen=True)
class Episode:
    states: np.ndarray  # (L, S) float32
    actions: np.ndarray  # (L, A) float32
    success: bool  # the env said the task was achieved at some step (False where the store does not record it)
    source: str  # "RUN_DIR#episode"


@dataclass(frozen=True)
class Demos:
    """The episodes of one task read from one or more stores, and where they came from."""

    episodes: list[Episode]
    task: str  # the task's name (a Meta-World task) or the env id
    env_id: str | None  # the env id to play it on (None when the store does not say)
    stores: list[str]


def _run_info(run_dir: Path) -> tuple[list[str], str | None]:
    """The store's task names (index → name) and its sequence, from its run.json."""
    try:
        info: dict[str, Any] = json.loads((run_dir / "run.json").read_text())
    except (OSError, ValueError) as exc:
        raise DemoDataError(f"--data {run_dir}: no readable run.json ({exc}); give a run directory made by "
                            "`thalamus record --expert` or `thalamus run`") from None
    names = info.get("task_names") or [info.get("config", {}).get("env_id", "?")]
    return list(names), info.get("sequence")


def _env_id(name: str, sequence: str | None) -> str | None:
    from envs.metaworld import PREFIX
    from envs.tasks import METAWORLD_SEQUENCES

    if sequence in METAWORLD_SEQUENCES:
        return PREFIX + name
    return None if sequence else name


def load_demos(run_dirs: list[Path], task: str | None = None) -> Demos:
    """Every committed episode of ``task`` (a task name, or None when the stores hold one task) in
    ``run_dirs``; DemoDataError (one line) for a missing store, a store without actions, several tasks
    and no choice, or a task none of the stores has."""
    episodes: list[Episode] = []
    chosen_env: str | None = None
    seen: set[str] = set()
    for run_dir in run_dirs:
        names, sequence = _run_info(run_dir)
        try:
            store = open_store(run_dir)
        except StoreError as exc:
            raise DemoDataError(f"--data {run_dir}: {exc}") from None
        if "action" not in store.keys or "obs" not in store.keys:
            raise DemoDataError(f"--data {run_dir}: the store has no obs/action arrays to learn from")
        tasks = store.episode_tasks
        present = sorted({names[int(k)] if int(k) < len(names) else str(int(k)) for k in tasks})
        seen.update(present)
        if task is None and len(seen) > 1:
            raise DemoDataError(f"the data holds several tasks ({', '.join(sorted(seen))}); train one policy per "
                                "task: add --task NAME")
        want = task if task is not None else (present[0] if present else None)
        for i, k in enumerate(tasks):
            name = names[int(k)] if int(k) < len(names) else str(int(k))
            if name != want:
                continue
            ep = store.get_episode(i)
            if ep["action"].dtype.kind != "f":
                raise DemoDataError(f"--data {run_dir}: its actions are discrete; the diffusion policy "
                                    "acts in continuous action spaces")
            success = bool(ep["success"].any()) if "success" in ep else False
            episodes.append(Episode(ep["obs"].astype(np.float32), ep["action"].astype(np.float32), success,
                                    f"{run_dir}#{i}"))
            chosen_env = _env_id(name, sequence)
        task = want
    if not episodes:
        raise DemoDataError(f"no episodes of task {task!r} in {', '.join(map(str, run_dirs))} "
                            f"(it holds: {', '.join(sorted(seen)) or 'no committed episodes'})")
    return Demos(episodes, str(task), chosen_env, [str(d) for d in run_dirs])


@dataclass(frozen=True)
class Normalizer:
    """Per-dimension affine map of states onto [-1, 1] (fitted on the training split)."""

    low: np.ndarray
    high: np.ndarray

    @classmethod
    def fit(cls, states: np.ndarray) -> Normalizer:
        return cls(states.min(0).astype(np.float32), states.max(0).astype(np.float32))

    def __call__(self, states: np.ndarray) -> np.ndarray:
        span = self.high - self.low
        safe = np.where(span > 1e-6, span, 1.0)
        return np.where(span > 1e-6, 2 * (states - self.low) / safe - 1, 0.0).astype(np.float32)

    def to_dict(self) -> dict[str, torch.Tensor]:
        return {"low": torch.from_numpy(self.low), "high": torch.from_numpy(self.high)}

    @classmethod
    def from_dict(cls, d: dict[str, torch.Tensor]) -> Normalizer:
        return cls(d["low"].numpy(), d["high"].numpy())


def windows(episodes: list[Episode], norm: Normalizer, obs_horizon: int, horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """Every step's (flattened normalised state window, action chunk) over ``episodes``."""
    obs_out, act_out = [], []
    for ep in episodes:
        states, actions, n = norm(ep.states), ep.actions, len(ep.states)
        idx = np.arange(n)
        past = np.clip(idx[:, None] + np.arange(-obs_horizon + 1, 1)[None], 0, n - 1)
        future = np.clip(idx[:, None] + np.arange(horizon)[None], 0, n - 1)
        obs_out.append(states[past].reshape(n, -1))
        act_out.append(actions[future])
    return np.concatenate(obs_out), np.concatenate(act_out)


def split(episodes: list[Episode], held_out: float, seed: int) -> tuple[list[Episode], list[Episode]]:
    """A seeded split by episode: at least one held out when there are two or more episodes."""
    order = np.random.default_rng(seed).permutation(len(episodes))
    n_held = min(len(episodes) - 1, max(1 if len(episodes) > 1 else 0, round(held_out * len(episodes))))
    held = set(order[:n_held].tolist())
    return [e for i, e in enumerate(episodes) if i not in held], [e for i, e in enumerate(episodes) if i in held]


def spectrum_slope(actions: np.ndarray) -> float:
    """β of a power law ``P(f) ∝ 1/f^β`` fitted (least squares in log-log) to the mean power spectrum
    of action chunks (N, T, A) along their time axis, DC left out; SeaCache's clean-spectrum model."""
    power = (np.abs(np.fft.rfft(actions - actions.mean(1, keepdims=True), axis=1)) ** 2).mean((0, 2))
    f = np.fft.rfftfreq(actions.shape[1])[1:]
    slope = np.polyfit(np.log(f), np.log(power[1:] + 1e-12), 1)[0]
    return float(max(0.0, -slope))
