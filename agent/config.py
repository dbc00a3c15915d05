"""The run's configuration: one dataclass that is also the `thalamus run` command line.

Every default lives here. `thalamus run --help` is built from these fields and their comments
(simple-parsing), run.json keeps ``to_dict()`` and ``--resume`` reads it back with ``from_dict``.
The models' own settings (perception, PPO, learner) are nested dataclasses here too, kept with the
run but not flags. This module imports no torch, so building the command line stays quick.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, is_dataclass
from typing import Any, get_args, get_type_hints

from simple_parsing import field as flag

from envs.options import EnvOptions


DEVICES = ("cpu", "cuda")
TRANSPORTS = ("auto", "pipes", "actor")
POLICY_KINDS = ("diffusion",)  # what --policy KIND:PATH may name (no --policy: PPO, learning from the reward)


@dataclass
class PerceptionConfig:
    """Shapes of the percept encoder."""

    frame_features: int = 16  # F: size of the CNN embedding of one frame
    channels: int = 8  # width of the CNN (its first layer is a 4x4 patchify, for speed on a CPU)
    clip: float = 5.0  # normalized state is clipped to [-clip, clip]


@dataclass(frozen=True)
class SparseRead:
    """A softmax captioner's streaming step reads only the newest ``local`` cache blocks of ``block``
    frames (what the scene is doing now) and the blocks that hold probability mass ``top_p`` of the
    block-mean scores, at least one and at most ``top_k`` (``kernels.sparse_attention``); chunked
    forwards stay dense."""

    top_k: int = 16
    top_p: float = 0.9
    block: int = 64
    local: int = 1


@dataclass
class PPOConfig:
    """Hyper-parameters; defaults solve CartPole-v1 with 8 envs in ~1e5 steps."""

    num_steps: int = 32  # rollout length per env between updates
    learning_rate: float = 1e-3
    anneal_lr: bool = True  # linearly to 0 over total_steps (needs a finite budget)
    gamma: float = 0.98
    gae_lambda: float = 0.8
    update_epochs: int = 20
    num_minibatches: int = 1
    clip_coef: float = 0.2
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: int = 64
    normalize_reward: bool = False  # scale rewards by a running std of the return (continuous control)
    background_update: bool = False  # update on a thread from a copy, so acting never waits for it

    @classmethod
    def for_actions(cls, discrete: bool) -> "PPOConfig":
        """Defaults by action type: rl-zoo's CartPole settings (discrete) or CleanRL's MuJoCo ones."""
        if discrete:
            return cls()
        return cls(num_steps=64, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95, update_epochs=10,
                   num_minibatches=4, normalize_reward=True)


@dataclass
class LearnerConfig:
    """World-model sizes and training schedule."""

    hidden: int = 128
    learning_rate: float = 1e-3
    batch_size: int = 256
    replay_capacity: int = 50_000  # transitions kept for training (oldest overwritten)
    max_updates_per_s: float = 20.0  # caps the learner's CPU share so it never starves acting
    method: str = "trc"  # "trc": the continual learner (continual_world.py); "mlp": this file's replay-trained MLP
    continual_lr: float = 0.05  # trc's SGD step size
    consolidate_every: int = 500  # trc steps between spectral consolidations when no task boundary comes


@dataclass
class AgentConfig:
    """What to run and how."""

    env_id: str = flag("CartPole-v1", alias=["--env"], metavar="ID")  # a Gymnasium id (or a Meta-World one); with --tasks, the run's label
    tasks: str | None = flag(None, metavar="NAME")  # a task sequence, learned one task after another with a checkpoint at each boundary: cartpole-physics, split-digits, split-digits-task, permuted-digits
    steps: int | None = flag(20_000, metavar="N")  # total env steps over all envs, rounded up to whole batches of --num-envs; with --tasks, split evenly over the tasks
    episodes: int | None = flag(None, metavar="N")  # instead of --steps: stop after this many finished episodes
    num_envs: int = flag(8, metavar="N")  # envs stepped together, batched through perception and policy
    frame_size: int = flag(64, metavar="PX")  # side of the square RGB camera frame, in pixels
    seed: int = flag(0, metavar="S")  # seeds the envs (env i gets seed+i) and the models
    device: str = flag("cpu", choices=DEVICES)  # where perception, the captioner and the learner run (the policy stays on the CPU)
    policy: str | None = flag(None, metavar="KIND:PATH")  # diffusion:PATH acts with a trained diffusion policy (`thalamus train policy`), which does not learn; default: PPO learning from the reward
    step_cache: str = flag("none", metavar="none|seacache|sencache")  # with a diffusion policy: skip denoiser steps whose output would barely change (none: every step)
    cache_threshold: float | None = flag(None, metavar="X")  # with --step-cache: SeaCache's δ or SenCache's ε (default: the cache's own)
    captioner: str = flag("auto", metavar="auto|off|PT")  # auto: the shipped captioner trained on this env, if any; off: no captions; or a checkpoint path (run.json keeps the path auto chose)
    caption_skip: int = flag(0, metavar="N")  # frames in a row the captioner may skip to keep up with acting (0: it reads every frame); it is told each gap, and a skipped step stores the next read frame's caption, marked
    checkpoint_every_s: float = flag(30.0, alias=["--checkpoint-every"], metavar="SECONDS")  # seconds between checkpoints/latest.pt, which --resume goes on from
    transport: str = flag("auto", choices=TRANSPORTS)  # the hot ring: pipes (one node), actor calls (any node); auto picks
    hop_timeout_s: float = flag(60.0, metavar="SECONDS")  # a perception, policy or recorder actor silent this long is reported as stalled
    camera: str | None = flag(None, metavar="NAME")  # Meta-World: the camera of the frames (default corner2, which shows arm and object; frames upright)
    full_episodes: bool = flag(False)  # Meta-World: run every episode its full 500 steps instead of ending it at the first success
    robot_config: str | None = flag(None, metavar="JSON")  # robot:MODULE:CLASS: the robot's config (JSON text or a .json file): its constructor's arguments, action limits, episode length, reward
    control_hz: float = flag(30.0, metavar="HZ")  # robot:MODULE:CLASS: steps a second the robot is driven at (late steps are counted)
    env_resources: str | None = flag(None, metavar="NAME=N")  # place the env actor on a Ray node that advertises this resource, e.g. robot=1 (the robot's computer)
    view: str | None = flag(None, metavar="native|web|save:PATH.rrd")  # watch the run in Rerun: the desktop viewer, the web viewer on loopback (its URL is printed), or a recording file (needs thalamus[view])
    view_fps: float = flag(10.0, metavar="FPS")  # with --view: camera frames a second of run time per env (0: every frame)
    ppo: PPOConfig | None = flag(None, cmd=False)  # None: PPOConfig.for_actions(the env's action type)
    perception: PerceptionConfig = flag(default_factory=PerceptionConfig, cmd=False)
    learner: LearnerConfig = flag(default_factory=LearnerConfig, cmd=False)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def env_options(self) -> EnvOptions:
        """The options `envs.make` takes, from this config's flags."""
        return EnvOptions(camera=self.camera, full_episodes=self.full_episodes, robot_config=self.robot_config,
                          control_hz=self.control_hz)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentConfig:
        """The config ``to_dict`` wrote (run.json's ``config``); ValueError naming the first field this
        version does not know (a run from a newer thalamus) or a nested value that is not an object."""
        return _from_dict(cls, d, "")


def policy_choice(text: str) -> tuple[str, str]:
    """``--policy KIND:PATH`` as (kind, path); ValueError (one line) for an unknown kind or no path."""
    kind, _, path = text.partition(":")
    if kind not in POLICY_KINDS:
        raise ValueError(f"--policy {text}: unknown kind {kind!r}; give {' or '.join(k + ':PATH' for k in POLICY_KINDS)} "
                         "(a checkpoint from `thalamus train policy`), or leave --policy out for PPO")
    if not path:
        raise ValueError(f"--policy {text}: give the checkpoint's path, e.g. {kind}:reach-v3.pt")
    return kind, path


def env_resources(text: str | None) -> dict[str, float]:
    """``--env-resources NAME=N[,NAME=N]`` as Ray's custom resources ({} for None); ValueError when malformed."""
    out: dict[str, float] = {}
    for part in text.split(",") if text else []:
        name, _, amount = part.partition("=")
        try:
            value = float(amount)
        except ValueError:
            value = -1.0
        if not name.strip() or value <= 0:
            raise ValueError(f"--env-resources {text!r}: give NAME=N, e.g. robot=1 (a resource a node advertises "
                             """with `ray start --resources '{"robot": 1}'`)""")
        out[name.strip()] = value
    return out


def _from_dict(cls: type, d: Any, where: str) -> Any:
    """``cls(**d)`` with nested dataclass fields built the same way, and unknown fields refused."""
    if not isinstance(d, dict):
        raise ValueError(f"config field {where.rstrip('.')!r} is not an object")
    known = {f.name: f for f in fields(cls)}
    kwargs: dict[str, Any] = {}
    for name, value in d.items():
        if name not in known:
            raise ValueError(f"unknown config field '{where}{name}' (written by a newer thalamus?)")
        nested = _nested_type(cls, name)
        kwargs[name] = _from_dict(nested, value, f"{where}{name}.") if nested and value is not None else value
    return cls(**kwargs)


def _nested_type(cls: type, name: str) -> type | None:
    """The dataclass type of field ``name`` of ``cls`` (also inside ``X | None``), else None."""
    hint = get_type_hints(cls)[name]
    return next((t for t in (hint, *get_args(hint)) if is_dataclass(t)), None)
