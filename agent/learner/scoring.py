"""Score a finished task-sequence run: each task-boundary checkpoint on every task's stored steps,
the forgetting matrix R (behind `thalamus replay`).

``R[i][j]`` scores the models saved after task ``i`` (``checkpoints/task_<i>.pt``) on the stored
steps of task ``j`` (the store's rows whose ``task`` is ``j``), so forgetting is measured on exactly
the experience the agent had, with no env in the loop:

- tasks with targets (the digits): **accuracy**, the fraction of steps where the checkpoint's policy,
  acting greedily (argmax of its logits; in a task-incremental sequence, argmax among the task's
  classes), on the percept the checkpoint's perception makes of the stored state and frame, picks
  the stored ``target``;
- tasks without (cartpole-physics): **loss**, the checkpoint's world model error on the task's stored
  transitions (row t to row t+1 of one episode): mean squared error of the next percept plus that of
  the reward, the learner's own training objective, in that checkpoint's percept space. Lower is
  better.

Checkpoints are read as tensors and plain data only (``agent.checkpoints.load_tensors``: a file
holding objects that would run code is refused) into the classes that wrote them, sized from the
run's ``run.json`` config; nothing in the run dir is written. A run with a captioner made its
percepts from the captioner's temporal features, so those are recomputed from the stored frames
(see :func:`caption_features`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gymnasium
import numpy as np
import torch
from torch import nn

from agent.checkpoints import CheckpointError, load_tensors
from agent.learner.continual_world import ContinualWorldModel
from agent.learner.forgetting import ForgettingReport, forgetting_report
from agent.learner.trc import TRCConfig
from agent.learner.world_model import LearnerConfig, WorldModel
from agent.perception.encoder import PerceptionConfig, PerceptionModel
from agent.policy.ppo import ActorCritic, PPOConfig
from envs.clips import square_resize
from envs.tasks import task_sequence
from memory import EpisodeStore, open_store, read_manifest

if TYPE_CHECKING:
    from agent.perception.captioner import Captioner

BATCH = 4096  # rows encoded at a time (bounds memory on long runs)
FEATURE_CHUNK = 256  # frames through the captioner at a time (bounds memory on long episodes)


class ScoringError(ValueError):
    """A run that cannot be scored; the message says why and what to do instead."""


@dataclass
class RunScore:
    """The matrix R of one run and what follows from it (``report``, in R's units)."""

    run: str
    sequence: str
    metric: str  # "accuracy" (higher is better) or "loss" (lower is better)
    tasks: list[str]  # the tasks with a checkpoint, in the order learned (R is len(tasks) square)
    report: ForgettingReport

    def to_dict(self) -> dict[str, Any]:
        return {"run": self.run, "sequence": self.sequence, "metric": self.metric, "tasks": self.tasks,
                **self.report.to_dict()}


@dataclass
class _Models:
    """The three models of one checkpoint, ready to score."""

    perception: PerceptionModel  # the state normalization (and, without a captioner, the frame CNN)
    policy: ActorCritic
    world_model: nn.Module  # WorldModel or ContinualWorldModel: (percept, action) → (next percept, reward)
    action_dim: int  # the world model's action input: a one-hot of the discrete action, or the action


@dataclass
class _TaskSteps:
    """One task's stored rows (episodes concatenated) and which of them have a successor."""

    obs: np.ndarray  # [T, S] float32
    frame: np.ndarray  # [T, H, W, 3] uint8
    action: np.ndarray  # [T] int64 or [T, A] float32
    reward: np.ndarray  # [T] float32
    target: np.ndarray | None  # [T] int64, for tasks with targets
    pairs: np.ndarray  # [P] rows t whose next row t+1 is the next step of the same episode
    features: np.ndarray | None  # [T, D] float32: the captioner's frame features (a run with a captioner)


def task_checkpoints(run_dir: Path, n_tasks: int) -> list[Path]:
    """``checkpoints/task_0.pt``, ``task_1.pt``, … as far as they exist without a gap."""
    paths = []
    for i in range(n_tasks):
        path = Path(run_dir) / "checkpoints" / f"task_{i}.pt"
        if not path.is_file():
            break
        paths.append(path)
    return paths


def score_run(run_dir: Path) -> RunScore:
    """Score every task-boundary checkpoint of ``run_dir`` on every learned task's stored steps."""
    run_dir = Path(run_dir)
    manifest = read_manifest(run_dir)
    name = manifest.get("sequence")
    if name is None:
        env = manifest.get("config", {}).get("env_id", "an env")
        raise ScoringError(f"'{run_dir}' is a run of {env} (--env), not of a task sequence: it has no task "
                           "boundaries to replay; make one with `thalamus run --tasks NAME`")
    try:
        seq = task_sequence(name)
    except ValueError as exc:
        raise ScoringError(f"'{run_dir}': its run.json names a task sequence this version lacks: {exc}") from None
    paths = task_checkpoints(run_dir, seq.n_tasks)
    if not paths:
        raise ScoringError(f"'{run_dir}' has no task checkpoints (checkpoints/task_0.pt, …): the run "
                           "stopped before its first task ended")
    config = manifest["config"]
    captioner = _captioner(run_dir, config.get("captioner"))
    env = seq.make(0, frame_size=config["frame_size"])  # the spaces every task of the sequence shares
    state_dim, space = int(env.observation_space["state"].shape[0]), env.action_space
    env.close()
    model = None
    if captioner is not None:  # (imports triton: only for a run that captioned)
        from agent.perception.train import load_checkpoint

        model = load_checkpoint(captioner)
    feature_dim = 0 if model is None else model.cfg.d_model
    models = [_load(path, config, state_dim, feature_dim, space) for path in paths]
    store = open_store(run_dir)
    k = len(paths)
    r = np.zeros((k, k))
    for j in range(k):  # one task's steps in memory at a time
        steps = _task_steps(store, j, seq.has_targets, model)
        if not len(steps.reward) or not (seq.has_targets or len(steps.pairs)):
            raise ScoringError(f"'{run_dir}' stores no steps of task {j} ({seq.names[j]}) to replay")
        classes = seq.task_classes[j] if seq.task_classes is not None else None
        for i, m in enumerate(models):
            r[i, j] = _accuracy(m, steps, classes) if seq.has_targets else _loss(m, steps)
    report = forgetting_report(r, higher_is_better=seq.has_targets)
    return RunScore(run=str(run_dir), sequence=seq.name, metric="accuracy" if seq.has_targets else "loss",
                    tasks=list(seq.names[:k]), report=report)


def _captioner(run_dir: Path, choice: str | None) -> Path | None:
    """The captioner checkpoint the run captioned with (None: it had none); ScoringError if it is gone."""
    if choice in (None, "auto", "off"):
        return None
    path = Path(choice)
    if not path.is_file():
        raise ScoringError(f"'{run_dir}' was run with the captioner {path}, which is gone: its percepts were "
                           "made from that captioner's features; put it back to replay the run")
    return path


def _load(path: Path, config: dict[str, Any], state_dim: int, feature_dim: int, space: gymnasium.Space) -> _Models:
    """A checkpoint's models, read as tensors and plain data only; ScoringError if the file is not a
    checkpoint this version wrote, or holds objects that would run code when loaded."""
    try:
        state = load_tensors(path)
    except CheckpointError as exc:
        raise ScoringError(str(exc)) from None
    try:
        return _rebuild(state, config, state_dim, feature_dim, space)
    except (KeyError, TypeError, AttributeError, RuntimeError, ValueError) as exc:
        raise ScoringError(f"'{path}' is not a checkpoint this version of thalamus can read "
                           f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None


def _rebuild(state: dict[str, Any], config: dict[str, Any], state_dim: int, feature_dim: int,
             space: gymnasium.Space) -> _Models:
    """Rebuild a checkpoint's perception, policy and world model with the run's sizes: the percept
    is the normalized state and either the frame CNN's features or (``feature_dim`` > 0) the
    captioner's."""
    discrete = hasattr(space, "n")
    action_dim = int(space.n) if discrete else int(np.prod(space.shape))
    cfg = PerceptionConfig(**config["perception"])
    perception = PerceptionModel(state_dim, cfg, cnn=not feature_dim)
    perception.load_state_dict(state["perception"])
    percept_dim = state_dim + (feature_dim or cfg.frame_features)
    ppo = PPOConfig(**config["ppo"]) if config.get("ppo") else PPOConfig.for_actions(discrete)
    policy = ActorCritic(percept_dim, action_dim, discrete, ppo.hidden)
    policy.load_state_dict(state["policy"]["net"])
    learner = LearnerConfig(**config["learner"])
    if learner.method == "trc":
        continual = ContinualWorldModel(percept_dim, action_dim, TRCConfig(lr=learner.continual_lr))
        continual.trc.load_state_dict(state["learner"]["trc"])
        world_model: nn.Module = continual
    else:
        world_model = WorldModel(percept_dim, action_dim, learner.hidden)
        world_model.load_state_dict(state["learner"]["model"])
    return _Models(perception, policy.eval(), world_model.eval(), action_dim)


@torch.no_grad()
def caption_features(captioner: Captioner, frames: np.ndarray) -> np.ndarray:
    """float32 [T, D]: the captioner's temporal feature of each of one episode's frames [T, H, W, 3]
    (any size), the episode played in order as one stream from a fresh state. These are the features
    a fresh single-stream ``LiveCaptioner`` gives frame by frame (the temporal layers' sequence and
    step forms agree to float rounding), computed a chunk of frames at a time.

    An approximation of what the run's policy saw: live, each env's stream ran on across that env's
    episodes and was never reset, so here an episode's features (its first frames' most) differ
    somewhat from those it had live, where the stream still carried the env's previous episode."""
    d, size = captioner.cfg.d_model, captioner.cfg.frame_size
    if not len(frames):
        return np.zeros((0, d), np.float32)
    if frames.shape[1:3] != (size, size):
        frames = np.stack([square_resize(f, size) for f in frames])
    device = next(captioner.parameters()).device
    state = captioner.initial_state(1, device)
    out = []
    for a in range(0, len(frames), FEATURE_CHUNK):
        feature, state = captioner(torch.as_tensor(frames[a:a + FEATURE_CHUNK], device=device)[None], state)
        out.append(feature[0].float().cpu().numpy())
    return np.concatenate(out)


def _task_steps(store: EpisodeStore, task: int, targets: bool, captioner: Captioner | None) -> _TaskSteps:
    """Every stored row of ``task``, read episode by episode (an episode never spans two tasks), with
    the captioner's features of its frames when the run had one."""
    parts: dict[str, list[np.ndarray]] = {key: [] for key in ("obs", "frame", "action", "reward", "target")}
    features: list[np.ndarray] = []
    pairs, offset = [], 0
    for e in np.flatnonzero(store.episode_tasks == task):
        ep = store.get_episode(int(e))
        rows = ep["task"] == task
        for key, chunks in parts.items():
            if key != "target" or targets:
                chunks.append(ep[key][rows])
        if captioner is not None:
            features.append(caption_features(captioner, ep["frame"][rows]))
        n = int(rows.sum())
        pairs.append(offset + np.arange(n - 1))
        offset += n
    cat = {key: np.concatenate(v) if v else np.zeros(0) for key, v in parts.items()}
    feats = None
    if captioner is not None:
        feats = np.concatenate(features) if features else np.zeros((0, captioner.cfg.d_model), np.float32)
    return _TaskSteps(cat["obs"], cat["frame"], cat["action"], cat["reward"], cat["target"] if targets else None,
                      np.concatenate(pairs).astype(np.int64) if pairs else np.zeros(0, np.int64), feats)


def _percepts(m: _Models, steps: _TaskSteps) -> torch.Tensor:
    """[T, D] percepts of the stored rows, as the checkpoint's perception makes them (no stat updates):
    the normalized state beside the CNN's frame features or the captioner's."""
    out = []
    for a in range(0, len(steps.obs), BATCH):
        state = m.perception.encode_state(steps.obs[a:a + BATCH], update_stats=False)
        frames = (m.perception.encode_frames(steps.frame[a:a + BATCH]) if steps.features is None
                  else steps.features[a:a + BATCH])
        out.append(np.concatenate([state, frames], 1).astype(np.float32))
    return torch.from_numpy(np.concatenate(out))


@torch.no_grad()
def _accuracy(m: _Models, steps: _TaskSteps, classes: tuple[int, ...] | None) -> float:
    """Fraction of rows where the greedy action (among ``classes``, if given) is the target."""
    logits = m.policy.actor(_percepts(m, steps))
    if classes is None:
        guess = logits.argmax(-1).numpy()
    else:
        allowed = np.asarray(classes)
        guess = allowed[logits[:, allowed].argmax(-1).numpy()]
    return float(np.mean(guess == steps.target))


@torch.no_grad()
def _loss(m: _Models, steps: _TaskSteps) -> float:
    """World-model error on the task's transitions: next-percept MSE + reward MSE."""
    percept = _percepts(m, steps)
    t = torch.from_numpy(steps.pairs)
    action = torch.as_tensor(steps.action[steps.pairs])
    if m.policy.discrete:  # the learner was fed one-hot actions
        action = torch.nn.functional.one_hot(action.long(), m.action_dim)
    pred_next, pred_reward = m.world_model(percept[t], action.float().reshape(len(t), -1))
    reward = torch.as_tensor(steps.reward[steps.pairs], dtype=torch.float32)
    return float((pred_next - percept[t + 1]).pow(2).mean() + (pred_reward - reward).pow(2).mean())
