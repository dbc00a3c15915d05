"""Evaluate a policy on fresh episodes: mean return and success rate with 95% intervals (behind
`thalamus eval`, and the rollouts `thalamus replay` scores a run's checkpoints by).

    >>> from agent.evaluation import EvalConfig, ExpertPolicy, evaluate, eval_tasks
    >>> report = evaluate(ExpertPolicy(), eval_tasks(env_id="Meta-World/reach-v3"), EvalConfig(episodes=3))
    >>> report.overall.success_rate
    1.0

Episodes run in this process, one env at a time. Episode ``i`` of every task starts from env seed
``envs.seeds.eval_seed(seed, i)``, never a seed a run trained or a demonstration was recorded on;
a task's episodes are the same whichever policy plays them, so two policies (two checkpoints of a
run) are compared on the same starts. The policy acts deterministically (a PPO policy: the argmax
of its logits, or its mean action clipped to the bounds) and learns nothing: its perception's
running state normalization stays as the checkpoint saved it. An episode is a success if
``info["success"]`` was true at any step (Meta-World's rule; its envs end an episode on success).

Intervals (95%):

- the mean return: Student's t, ``mean ± t(0.975, n-1) · s / √n`` (None for one episode);
- the success rate: Wilson's score interval (Wilson 1927), which stays inside [0, 1] and is not
  empty at 0 or n successes, unlike the normal one.

Over a task sequence, ``EvalReport.overall`` pools every task's episodes (each task the same number);
its intervals treat them as one sample, which overstates the spread of the average over these fixed
tasks when the tasks differ (the interval is conservative).

Policies are loaded by kind (``POLICY_LOADERS``): ``ppo`` reads a run's checkpoint with the config
in the run's ``run.json``; ``diffusion`` a `thalamus train policy` checkpoint (its frames are not
rendered: it reads the state); a new kind is a function ``Path → LoadedPolicy`` added there. Only
``load_*`` functions and :class:`PPOPolicy`'s methods import torch, so importing this module is
cheap (the CLI checks its input before paying for torch).
"""

from __future__ import annotations

import math
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Protocol

import gymnasium
import numpy as np

from envs import metaworld
from envs.options import EnvOptions
from envs.registry import env_spec, make, reports_success
from envs.seeds import DEMO_BASE, EVAL_BASE, eval_seed
from envs.tasks import METAWORLD_SEQUENCES, task_sequence

if TYPE_CHECKING:
    from agent.config import AgentConfig
    from agent.perception.captioner import Captioner
    from agent.perception.encoder import PerceptionModel
    from agent.policy.ppo import ActorCritic

Z95 = 1.959963984540054  # the standard normal's 0.975 quantile
CHECKPOINTS = "checkpoints"
FEATURE_CHUNK = 256  # frames through the captioner at a time in `caption_features` (bounds memory)


class EvaluationError(ValueError):
    """A policy or env that cannot be evaluated; the message says what and what to do instead."""


# -- what is evaluated on -------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalConfig:
    """How many episodes and from which seeds."""

    episodes: int = 20  # per task
    seed: int = 0  # episode i starts from env seed envs.seeds.eval_seed(seed, i)
    max_steps: int = 10_000  # an episode still running after this many steps is cut (an env with no time limit)

    def validate(self) -> None:
        """EvaluationError unless every episode's seed lies in this seed's share of the evaluation range."""
        if self.episodes < 1:
            raise EvaluationError(f"--episodes must be at least 1, got {self.episodes}")
        if self.max_steps < 1:
            raise EvaluationError(f"max_steps must be at least 1, got {self.max_steps}")
        stride = eval_seed(1, 0) - eval_seed(0, 0)
        if self.seed < 0 or eval_seed(self.seed + 1, 0) > DEMO_BASE:
            raise EvaluationError(f"--seed must be 0..{(DEMO_BASE - EVAL_BASE) // stride - 1}, got {self.seed} "
                                  "(evaluation seeds must not reach the training or demonstration ones)")
        if self.episodes > stride:
            raise EvaluationError(f"--episodes must be at most {stride} (one seed's share of evaluation "
                                  f"seeds), got {self.episodes}")


@dataclass(frozen=True)
class EvalTask:
    """One env to evaluate on: its name, how to make it, and what it reports."""

    name: str  # the env id, or the task's name in its sequence
    make: Callable[[int], gymnasium.Env] = field(repr=False, compare=False)  # seed → the env
    env_id: str | None  # the `envs.make` id it is (None for a task no id names: cartpole-physics', the digits')
    reports_success: bool  # its steps' info["success"] says whether the task was achieved
    sequence: str | None = None  # the task sequence it is a task of
    classes: tuple[int, ...] | None = None  # the actions to pick among: a task-incremental sequence's task classes


def eval_tasks(*, env_id: str | None = None, sequence: str | None = None, frame_size: int = 64,
               options: EnvOptions = EnvOptions()) -> list[EvalTask]:
    """The env ``env_id`` (one task), or every task of ``sequence``, as ``envs.make`` makes them with
    frames of ``frame_size`` and ``options``; EnvNotFoundError for an unknown id, EvaluationError for
    an unknown sequence or a missing/doubled choice."""
    if (env_id is None) == (sequence is None):
        raise EvaluationError("give an env id or a task sequence to evaluate on (one of them)")
    if frame_size < 1:
        raise EvaluationError(f"--frame-size must be a positive number of pixels, got {frame_size}")
    if env_id is not None:
        env_spec(env_id)  # an unknown id fails here, in one line, before anything is loaded
        return [EvalTask(env_id, partial(_make_env, env_id, frame_size, options), env_id, reports_success(env_id))]
    try:
        seq = task_sequence(sequence)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from None
    # Meta-World's sequences name their tasks by the skill, so each task is the env Meta-World/SKILL
    ids = [metaworld.PREFIX + name if seq.name in METAWORLD_SEQUENCES else None for name in seq.names]
    classes = seq.task_classes or (None,) * seq.n_tasks  # split-digits-task: the task id is known at test time
    return [EvalTask(name, partial(_make_task, seq.name, i, frame_size, options), ids[i], seq.reports_success,
                     seq.name, classes[i]) for i, name in enumerate(seq.names)]


def _make_env(env_id: str, frame_size: int, options: EnvOptions, seed: int) -> gymnasium.Env:
    return make(env_id, frame_size=frame_size, seed=seed, options=options)


def _make_task(sequence: str, index: int, frame_size: int, options: EnvOptions, seed: int) -> gymnasium.Env:
    return task_sequence(sequence).make(index, frame_size=frame_size, seed=seed, options=options)


# -- policies ---------------------------------------------------------------------------------------
class Policy(Protocol):
    """What `evaluate` plays: told each task and episode as it starts, then asked one action per step."""

    def begin_task(self, task: EvalTask, env: gymnasium.Env) -> None:
        """Before a task's episodes: check ``env``'s spaces (EvaluationError if they do not fit)."""

    def begin_episode(self) -> None:
        """Before each episode: forget the last one (e.g. a captioner's stream)."""

    def act(self, obs: dict[str, np.ndarray]) -> Any:
        """The action for one observation ``{"state", "frame"}``, deterministically."""


@dataclass(frozen=True)
class LoadedPolicy:
    """A policy read from disk and the env settings it was trained with (the defaults to evaluate it on)."""

    policy: Policy
    frame_size: int  # the side of the frames its perception learned on
    options: EnvOptions  # e.g. the Meta-World camera its frames came from
    env_id: str | None  # the env it was trained on (None for a task sequence)
    sequence: str | None  # the task sequence it was trained on, if any
    source: str  # the file it came from, for the report


def has_expert(task: EvalTask) -> bool:
    """Whether `ExpertPolicy` can play ``task``: Meta-World's tasks have a scripted expert."""
    return task.env_id is not None and metaworld.is_metaworld(task.env_id)


def check_expert(tasks: Sequence[EvalTask]) -> None:
    """EvaluationError naming the first of ``tasks`` that has no scripted expert (checked before any env is made)."""
    for task in tasks:
        if not has_expert(task):
            what = task.name if task.sequence is None else f"{task.sequence} (its task {task.name!r})"
            raise EvaluationError(f"--expert: {what} has no scripted expert (Meta-World's tasks have one: "
                                  "--env Meta-World/TASK, --tasks cw10 or --tasks mw-easy)")


class ExpertPolicy:
    """Meta-World's scripted expert of each task (`envs.metaworld.expert`), from the state alone."""

    def __init__(self) -> None:
        self._act: Callable[[np.ndarray], np.ndarray] | None = None

    def begin_task(self, task: EvalTask, env: gymnasium.Env) -> None:
        check_expert([task])
        self._act = metaworld.expert(task.env_id)

    def begin_episode(self) -> None:
        """The expert looks at the state only: nothing to forget."""

    def act(self, obs: dict[str, np.ndarray]) -> np.ndarray:
        assert self._act is not None, "begin_task() first"
        return self._act(obs["state"])


class PPOPolicy:
    """A run's PPO policy acting greedily on the percept its perception makes: the normalized state
    (statistics frozen) beside the frame CNN's features or, for a run that captioned with an earlier
    version (its policy acted on them), the captioner's temporal features, its stream started afresh
    each episode; on a task with ``classes`` (a
    task-incremental sequence) the argmax among them. It acts on one observation at a time,
    which torch's intra-op threads only slow down: run it under ``torch.set_num_threads(1)``."""

    def __init__(self, perception: PerceptionModel, net: ActorCritic, captioner: Captioner | None) -> None:
        self.perception, self.net, self.captioner = perception, net.eval(), captioner
        self.state_dim = len(perception.norm.mean)
        self.action_dim = int(net.actor[-1].out_features)
        self.low: np.ndarray | None = None
        self.high: np.ndarray | None = None
        self.classes: np.ndarray | None = None  # the task's actions to pick among (None: all)
        self._stream: Any = None  # the captioner's streaming state

    def begin_task(self, task: EvalTask, env: gymnasium.Env) -> None:
        state_dim = int(env.observation_space["state"].shape[0])
        space = env.action_space
        if state_dim != self.state_dim:
            raise EvaluationError(f"{task.name} gives a state of {state_dim} numbers; "
                                  f"the policy takes {self.state_dim}")
        discrete = isinstance(space, gymnasium.spaces.Discrete)
        size = int(space.n) if discrete else int(np.prod(space.shape))
        if discrete != self.net.discrete or size != self.action_dim:
            kind = "discrete" if self.net.discrete else "continuous"
            raise EvaluationError(f"{task.name} takes {space}; "
                                  f"the policy gives {kind} actions of size {self.action_dim}")
        if not discrete:
            self.low, self.high = space.low.astype(np.float32), space.high.astype(np.float32)
        self.classes = None if task.classes is None else np.asarray(task.classes)

    def begin_episode(self) -> None:
        if self.captioner is not None:
            self._stream = self.captioner.initial_state(1)

    def act(self, obs: dict[str, np.ndarray]) -> int | np.ndarray:
        import torch

        with torch.no_grad():
            state = self.perception.encode_state(obs["state"][None], update_stats=False)  # [1, S]
            if self.captioner is None:
                frames = self.perception.encode_frames(obs["frame"][None])  # [1, F]
            else:
                frames = self._caption_features(obs["frame"])  # [1, D]
            out = self.net.actor(torch.from_numpy(np.concatenate([state, frames], 1).astype(np.float32)))[0]
        if self.net.discrete:
            logits = out.numpy()
            return int(logits.argmax()) if self.classes is None else int(self.classes[logits[self.classes].argmax()])
        action = out.numpy().astype(np.float32)
        return action if self.low is None else np.clip(action, self.low, self.high)

    def _caption_features(self, frame: np.ndarray) -> np.ndarray:
        """float32 [1, D]: the captioner's feature of the episode's next frame (any size)."""
        import torch

        from envs.clips import square_resize

        size = self.captioner.cfg.frame_size
        if frame.shape[:2] != (size, size):
            frame = square_resize(frame, size)
        feature, self._stream = self.captioner.step(torch.as_tensor(frame)[None], self._stream)
        return feature.float().numpy()


def caption_features(captioner: Captioner, frames: np.ndarray) -> np.ndarray:
    """float32 [T, D]: the captioner's temporal feature of each of one episode's frames [T, H, W, 3]
    (any size), the episode played in order as one stream from a fresh state: what `PPOPolicy` feeds
    its policy frame by frame (the temporal layers' sequence and step forms agree to float rounding),
    computed ``FEATURE_CHUNK`` frames at a time. The tests check `PPOPolicy` against it."""
    import torch

    from envs.clips import square_resize

    d, size = captioner.cfg.d_model, captioner.cfg.frame_size
    if not len(frames):
        return np.zeros((0, d), np.float32)
    if frames.shape[1:3] != (size, size):
        frames = np.stack([square_resize(f, size) for f in frames])
    device = next(captioner.parameters()).device
    state = captioner.initial_state(1, device)
    out = []
    with torch.no_grad():
        for a in range(0, len(frames), FEATURE_CHUNK):
            feature, state = captioner(torch.as_tensor(frames[a:a + FEATURE_CHUNK], device=device)[None], state)
            out.append(feature[0].float().cpu().numpy())
    return np.concatenate(out)


def load_run(run_dir: Path, checkpoint: str = "final") -> LoadedPolicy:
    """The PPO policy of ``run_dir``'s ``checkpoint``: ``final``, ``task_<i>``, ``latest`` (a file
    in its ``checkpoints/``) or a path; EvaluationError naming what is missing."""
    return _load_ppo(run_checkpoint(run_dir, checkpoint), Path(run_dir))


def run_checkpoint(run_dir: Path, checkpoint: str) -> Path:
    """The file ``checkpoint`` names for the run ``run_dir``, checked to be a torch.save file (torch
    is not imported); EvaluationError for a missing run, or listing the run's checkpoints."""
    if not Path(run_dir).is_dir():
        raise EvaluationError(f"no run at '{run_dir}': the directory does not exist")
    if not (Path(run_dir) / "run.json").is_file():
        raise EvaluationError(f"'{run_dir}' is not a thalamus run: it has no run.json")
    for path in (Path(run_dir) / CHECKPOINTS / f"{checkpoint}.pt", Path(checkpoint)):
        if path.is_file():
            return _torch_file(path)
    have = sorted(p.stem for p in (Path(run_dir) / CHECKPOINTS).glob("*.pt"))
    raise EvaluationError(f"'{run_dir}' has no checkpoint {checkpoint!r} (it has: "
                          f"{', '.join(have) if have else 'none; the run stopped before its first'}); "
                          "give final, task_<i>, latest or a .pt file")


def _torch_file(path: Path) -> Path:
    """``path``, if it is a torch.save file (a zip archive; a quick look, before torch is imported)."""
    if not zipfile.is_zipfile(path):
        raise EvaluationError(f"'{path}' is not a thalamus checkpoint (not a torch.save file)")
    return path


def load_ppo(path: Path) -> LoadedPolicy:
    """``--policy ppo:PATH``: a checkpoint a run wrote (``RUN_DIR/checkpoints/NAME.pt``), read with
    that run's config from ``RUN_DIR/run.json``; EvaluationError if there is none."""
    path = Path(path)
    if not path.is_file():
        raise EvaluationError(f"--policy ppo:{path}: no such file")
    _torch_file(path)
    run_dir = path.resolve().parent.parent  # RUN_DIR/checkpoints/NAME.pt
    if not (run_dir / "run.json").is_file():
        raise EvaluationError(f"--policy ppo:{path}: its run's config is missing (no {run_dir / 'run.json'}); "
                              "a PPO checkpoint is read with the run.json of its run: "
                              "give a file in a run's checkpoints/")
    return _load_ppo(path, run_dir)


def _run_config(run_dir: Path) -> AgentConfig:
    """The config ``run_dir``'s run.json keeps; EvaluationError if this version cannot read it."""
    from agent.config import AgentConfig
    from memory import read_manifest

    try:
        return AgentConfig.from_dict(read_manifest(run_dir).get("config") or {})
    except (ValueError, TypeError) as exc:
        raise EvaluationError(f"{run_dir / 'run.json'} holds no config this version can read: {exc}") from None


def _load_ppo(path: Path, run_dir: Path) -> LoadedPolicy:
    """Perception and PPO policy of one checkpoint, sized from the file itself (state size, percept
    size, actions), with the run's perception config and captioner."""
    cfg = _run_config(run_dir)  # (before torch is imported: a bad run.json is a quick line)
    from agent.checkpoints import load_tensors
    from agent.perception.encoder import PerceptionModel
    from agent.policy.ppo import ActorCritic

    state = load_tensors(path)  # CheckpointError (one line) for a file that is not one
    try:
        net_state, norm = state["policy"]["net"], state["perception"]["norm_mean"]
        layers = [v for k, v in net_state.items() if k.startswith("actor.") and k.endswith(".weight")]
        percept_dim, hidden, action_dim = layers[0].shape[1], layers[0].shape[0], layers[-1].shape[0]
    except (KeyError, TypeError, IndexError, AttributeError):
        raise EvaluationError(f"'{path}' is not a run's checkpoint (it holds no PPO policy and perception): "
                              "give checkpoints/final.pt, task_<i>.pt or latest.pt of a run") from None
    state_dim = len(norm)
    # runs of versions before captions left the percept acted on the captioner's features
    captioner = (_captioner(run_dir, cfg.captioner)
                 if percept_dim != state_dim + cfg.perception.frame_features else None)
    feature_dim = captioner.cfg.d_model if captioner is not None else cfg.perception.frame_features
    if percept_dim != state_dim + feature_dim:
        raise EvaluationError(f"'{path}' does not fit its run's config: its policy takes percepts of {percept_dim} "
                              f"numbers, the run's perception makes {state_dim} + {feature_dim}")
    try:
        perception = PerceptionModel(state_dim, cfg.perception, cnn=captioner is None)
        perception.load_state_dict(state["perception"])
        net = ActorCritic(percept_dim, action_dim, "log_std" not in net_state, hidden)
        net.load_state_dict(net_state)
    except (KeyError, RuntimeError, ValueError) as exc:
        raise EvaluationError(f"'{path}' is not a checkpoint this version of thalamus can read "
                              f"({type(exc).__name__}: {' '.join(str(exc).split())[:200]})") from None
    env_id = None if cfg.tasks is not None else cfg.env_id
    return LoadedPolicy(PPOPolicy(perception, net, captioner), cfg.frame_size, cfg.env_options(), env_id,
                        cfg.tasks, str(path))


def _captioner(run_dir: Path, choice: str | None) -> Captioner | None:
    """The captioner the run captioned with (None: it had none); EvaluationError if it is gone."""
    if choice in (None, "auto", "off"):  # a run.json records the checkpoint `auto` chose; None, auto: older runs
        return None
    path = Path(choice)
    if not path.is_file():
        raise EvaluationError(f"'{run_dir}' was run with the captioner {path}, which is gone: its policy acts on "
                              "that captioner's features; put it back to evaluate the run")
    from agent.perception.train import load_checkpoint  # (imports triton: only for a run that captioned)

    return load_checkpoint(path)


# Policy loaders by the KIND of ``--policy KIND:PATH``; a new kind (e.g. ``diffusion``) is a function
# ``Path → LoadedPolicy`` whose policy implements `Policy`, added here.
def load_diffusion(path: Path, sampler: Any = None) -> LoadedPolicy:
    """``--policy diffusion:PATH``: a checkpoint `thalamus train policy` wrote, sampled with ``sampler``
    (an `agent.policy.diffusion.SamplerConfig`; default DDIM 16 without a step cache)."""
    from agent.policy.diffusion.eval_policy import load_diffusion as load
    from agent.policy.diffusion.sampler import SamplerConfig

    if not Path(path).is_file():
        raise EvaluationError(f"--policy diffusion:{path}: no such file (make one with `thalamus train policy`)")
    _torch_file(Path(path))
    return load(Path(path), sampler or SamplerConfig())


POLICY_LOADERS: Mapping[str, Callable[..., LoadedPolicy]] = MappingProxyType({"ppo": load_ppo,
                                                                            "diffusion": load_diffusion})


# -- results ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Episode:
    """One evaluation episode."""

    task: str
    index: int  # i: its seed is eval_seed(seed, i)
    seed: int
    ret: float  # the undiscounted return
    length: int  # steps
    success: bool | None  # info["success"] at some step (None: the env does not report success)


@dataclass(frozen=True)
class EvalResult:
    """Episodes of one task (or pooled over tasks) and their statistics."""

    episodes: list[Episode]

    @property
    def returns(self) -> list[float]:
        return [e.ret for e in self.episodes]

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns))

    @property
    def return_ci95(self) -> tuple[float, float] | None:
        return mean_interval(self.returns)

    @property
    def success_rate(self) -> float | None:
        """Fraction of episodes that succeeded; None if some episode's env does not report success."""
        if any(e.success is None for e in self.episodes):
            return None
        return sum(bool(e.success) for e in self.episodes) / len(self.episodes)

    @property
    def success_ci95(self) -> tuple[float, float] | None:
        rate = self.success_rate
        return None if rate is None else wilson_interval(round(rate * len(self.episodes)), len(self.episodes))

    def to_dict(self) -> dict[str, Any]:
        ci, sci = self.return_ci95, self.success_ci95
        return {"episodes": len(self.episodes), "mean_return": self.mean_return,
                "return_ci95": None if ci is None else list(ci), "success_rate": self.success_rate,
                "success_ci95": None if sci is None else list(sci), "returns": self.returns,
                "lengths": [e.length for e in self.episodes],
                "successes": None if self.success_rate is None else [bool(e.success) for e in self.episodes]}


@dataclass(frozen=True)
class EvalReport:
    """Every task's result, in the order given, and all of them pooled."""

    per_task: dict[str, EvalResult]

    @property
    def overall(self) -> EvalResult:
        return EvalResult([e for r in self.per_task.values() for e in r.episodes])

    def to_dict(self) -> dict[str, Any]:
        """The pooled result's keys; with more than one task also ``per_task`` (name → the same keys)."""
        out = self.overall.to_dict()
        if len(self.per_task) > 1:
            out["per_task"] = {name: r.to_dict() for name, r in self.per_task.items()}
        return out


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval of a success rate ``successes / n`` (95% for the default ``z``).

    >>> [round(x, 4) for x in wilson_interval(8, 10)]
    [0.4902, 0.9433]
    """
    if n < 1 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n >= 1, got {successes} of {n}")
    p, z2 = successes / n, z * z
    center = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return max(0.0, center - half), min(1.0, center + half)


def mean_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """Student's t interval of the mean of ``values`` (None for fewer than two: no spread to go by).

    >>> [round(x, 4) for x in mean_interval([1, 2, 3, 4, 5])]
    [1.0368, 4.9632]
    """
    n = len(values)
    if n < 2:
        return None
    from scipy.special import stdtrit  # (scipy comes with scikit-learn)

    x = np.asarray(values, dtype=np.float64)
    mean, half = float(x.mean()), float(stdtrit(n - 1, 0.5 + level / 2) * x.std(ddof=1) / math.sqrt(n))
    return mean - half, mean + half


# -- the loop ---------------------------------------------------------------------------------------
def run_episodes(policy: Policy, task: EvalTask, cfg: EvalConfig,
                 on_episode: Callable[[Episode], None] | None = None,
                 env: gymnasium.Env | None = None) -> EvalResult:
    """``cfg.episodes`` episodes of ``task`` played by ``policy``, episode i from seed
    ``eval_seed(cfg.seed, i)``; ``on_episode`` hears of each as it ends. ``env``: an env of ``task``
    already made, played on and left open, so that several policies share one (a Meta-World env
    takes seconds to make; every reset is seeded, so what it played before changes nothing)."""
    cfg.validate()
    own = env is None
    if env is None:
        env = task.make(eval_seed(cfg.seed, 0))
    try:
        policy.begin_task(task, env)
        done: list[Episode] = []
        for i in range(cfg.episodes):
            seed = eval_seed(cfg.seed, i)
            obs, _ = env.reset(seed=seed)
            policy.begin_episode()
            ret, steps, success, over = 0.0, 0, False, False
            while not over and steps < cfg.max_steps:
                obs, reward, terminated, truncated, info = env.step(policy.act(obs))
                ret, steps = ret + float(reward), steps + 1
                success = success or bool(info.get("success", False))
                over = terminated or truncated
            episode = Episode(task.name, i, seed, ret, steps, success if task.reports_success else None)
            done.append(episode)
            if on_episode is not None:
                on_episode(episode)
        return EvalResult(done)
    finally:
        if own:
            env.close()


def evaluate(policy: Policy, tasks: Sequence[EvalTask], cfg: EvalConfig,
             on_episode: Callable[[Episode], None] | None = None) -> EvalReport:
    """Every task's episodes in turn (see :func:`run_episodes`)."""
    return EvalReport({task.name: run_episodes(policy, task, cfg, on_episode) for task in tasks})

