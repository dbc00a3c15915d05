"""The agent: its actors, the channels between them, and the loop that drives them.

```
 EnvActor ─obs─▶ PerceptionActor ─percept─▶ PolicyActor ─action─▶ EnvActor      (hot path, block)
    │                                           │
    └─episodes─▶ RecorderActor ─▶ store.zarr    └─transitions─▶ LearnerActor    (off the hot path)
```

Given a task sequence (``AgentConfig.tasks``), the agent steps task 0, then task 1, …: at each
boundary the in-flight steps drain, the perception, policy and learner weights are saved to
``checkpoints/task_<i>.pt``, and the EnvActor moves its envs to the next task.

With ``use_ray=True`` each box is a Ray actor. On one node each hot-path arrow is a named pipe
between loop threads in the actors (agent/pipes.py; the driver passes each observation on to
perception and waits for the next); across nodes it is an actor call whose ObjectRef is handed
straight to the next actor, with at most ``depth`` batched steps in flight. With
``use_ray=False`` the same classes run in one process, which is the baseline the pipeline
benchmark compares against. Every ``checkpoint_every_s`` the models are saved to
``checkpoints/latest.pt``: ``--resume`` goes on from there, and so does an actor Ray restarts.
"""

from __future__ import annotations

import collections
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from agent.channels import ChannelTimeout
from agent.env_actor import EnvActor, store_specs
from agent.learner.actor import LearnerActor
from agent.learner.world_model import LearnerConfig
from agent.perception.actor import PerceptionActor
from agent.perception.encoder import PerceptionConfig
from agent.pipes import PeerClosed, PipeRing, StageFailed, on_ray_actors
from agent.policy.actor import PolicyActor
from agent.policy.ppo import PPOConfig
from agent.recorder import RecorderActor
from agent.resume import ResumePoint, load_checkpoint, save_checkpoint
from envs.tasks import TaskSequence, task_sequence


@dataclass
class AgentConfig:
    """What to run and how; the CLI fills it from flags."""

    env_id: str = "CartPole-v1"  # a Gymnasium id; with `tasks`, only the run's label (its sequence's name)
    tasks: str | None = None  # a task sequence (envs.tasks), stepped task after task instead of env_id
    steps: int | None = 20_000  # total env steps over all envs (None: run until `episodes`); with
    # `tasks`, split evenly over the tasks, each task's share rounded up to whole batches of num_envs
    episodes: int | None = None  # stop after this many finished episodes
    num_envs: int = 8  # envs stepped together in the EnvActor, batched through perception/policy
    frame_size: int = 64
    seed: int = 0
    device: str = "cpu"  # where perception, the captioner and the learner run (PPO stays on the CPU)
    depth: int = 2  # batched steps the driver submits ahead (the env-step channel's window)
    hop_timeout_s: float = 60.0  # a peer silent this long is reported as stalled
    checkpoint_every_s: float = 30.0  # how often the models are saved to checkpoints/latest.pt (for --resume)
    transport: str = "auto"  # hot path: "pipes" (named pipes between the actors' loop threads, agent/pipes.py),
    # "compiled" (a Ray Compiled Graph: shared-memory channels, busy-polled), "actor" (plain actor calls,
    # ObjectRefs chained); "auto": pipes on a one-node cluster, actor calls across nodes
    captioner: str | None = None  # a captioner checkpoint: perception captions every frame, stored per step
    ppo: PPOConfig | None = None  # None: PPOConfig.for_actions(the env's action type), without
    # learning-rate annealing over a task sequence (a continual learner has no known end)
    perception: PerceptionConfig = field(default_factory=PerceptionConfig)
    learner: LearnerConfig = field(default_factory=LearnerConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentConfig:
        """The config ``to_dict`` wrote (run.json's ``config``); ValueError naming the first field this
        version does not know (a run from a newer thalamus) or a value of the wrong kind."""
        nested = {"ppo": PPOConfig, "perception": PerceptionConfig, "learner": LearnerConfig}
        kwargs: dict[str, Any] = {}
        for name, value in d.items():
            if name not in cls.__dataclass_fields__:
                raise ValueError(f"unknown config field {name!r} (written by a newer thalamus?)")
            if name in nested and value is not None:
                if not isinstance(value, dict):
                    raise ValueError(f"config field {name!r} is not an object")
                unknown = set(value) - set(nested[name].__dataclass_fields__)
                if unknown:
                    raise ValueError(f"unknown config field '{name}.{min(unknown)}' (written by a newer thalamus?)")
                value = nested[name](**value)
            kwargs[name] = value
        return cls(**kwargs)


MAX_RESTARTS = 3  # per restartable actor (perception, policy, learner); the env and recorder hold the run's state

# how a dead actor shows on the hot path
_DIED = (ray.exceptions.RayActorError, ray.exceptions.RayChannelError, PeerClosed)
TRANSPORTS = ("auto", "pipes", "compiled", "actor")


class ActorFailed(RuntimeError):
    """An actor raised; the message names the actor and its error in one line."""


def _last_error_line(exc: BaseException) -> str:
    """The ``SomeError: message`` line at the bottom of a remote traceback, else the class name."""
    lines = [ln.strip() for ln in str(exc).splitlines() if "Error" in ln.split(":")[0] and ":" in ln]
    return lines[-1] if lines else type(exc).__name__


class Agent:
    """Creates the actors for one run and drives them; ``run`` returns the summary."""

    def __init__(self, cfg: AgentConfig, run_dir: Path | None, use_ray: bool = True,
                 resume: ResumePoint | None = None) -> None:
        """``resume``: go on with the stopped run in ``run_dir`` from this point (see agent/resume.py)."""
        self.cfg, self.run_dir, self.use_ray, self.resume = cfg, run_dir, use_ray, resume
        self.sequence: TaskSequence | None = task_sequence(cfg.tasks) if cfg.tasks is not None else None
        if self.sequence is not None and (cfg.steps is None or cfg.episodes is not None):
            raise ValueError("a task sequence's budget is steps: set steps and leave episodes None")
        gpu = 0.25 if cfg.device.startswith("cuda") and use_ray else 0
        self.caption_len = 0
        if cfg.captioner is not None:  # (imports triton, which must come before any MuJoCo render here)
            from agent.perception.train import checkpoint_config

            self.caption_len = checkpoint_config(Path(cfg.captioner)).max_len
        # a resumed run's envs are seeded past the original ones, so its new episodes are new
        env_seed = cfg.seed + (resume.steps if resume else 0)
        self.env = self._spawn(EnvActor, cfg.env_id, cfg.num_envs, cfg.frame_size, env_seed,
                               resume.task if resume else 0, cfg.episodes, self.caption_len, cfg.tasks)
        if resume is not None:
            self._get(self._call(self.env, "continue_from", resume.steps, resume.episodes, resume.started), "env")
        spec = self._get(self._call(self.env, "spec"), "env")
        self.recorder = (self._spawn(RecorderActor, str(run_dir), store_specs(spec, self.caption_len),
                                     resume is not None, here=True)
                         if run_dir is not None else None)
        if self.recorder is not None:
            self._get(self._call(self.env, "attach_recorder", self.recorder), "env")
        self.perception = self._spawn(PerceptionActor, spec["state_dim"], cfg.perception, cfg.seed,
                                      cfg.device, cfg.captioner, cfg.num_envs, num_gpus=gpu, restart=True)
        percept_dim = spec["state_dim"] + cfg.perception.frame_features
        learner_name = f"thalamus-learner-{uuid.uuid4().hex[:12]}"
        self.learner = self._spawn(LearnerActor, percept_dim, spec["action_dim"], cfg.learner, cfg.seed,
                                   cfg.device, str(run_dir) if run_dir is not None else None,
                                   num_gpus=gpu, here=run_dir is not None, restart=True,  # writes into the run store
                                   name=learner_name)
        ppo = cfg.ppo or replace(PPOConfig.for_actions(spec["discrete"]), anneal_lr=self.sequence is None)
        # the policy finds the learner by name: a handle would be a constructor argument kept in the
        # object store, which Ray warns a restart may not find
        self.policy = self._spawn(PolicyActor, percept_dim, spec, cfg.num_envs, ppo, cfg.steps,
                                  cfg.seed, learner_name if use_ray else self.learner, restart=True)
        self.spec = spec
        self.state: dict[str, Any] | None = None  # the newest checkpoint, put back into a restarted actor
        if resume is not None and resume.checkpoint is not None:
            self.state = load_checkpoint(resume.checkpoint)
            self._load_state(("perception", "policy", "learner"))
        self.pids = self._pids()
        self.restarts = 0  # actor processes found replaced by Ray after a death
        self.graph = self._compile_hot_path()
        self.transport = ("inprocess" if not use_ray else "pipes" if isinstance(self.graph, PipeRing)
                          else "compiled" if self.graph is not None else "actor")
        self.recoveries = 0  # times the hot path was rebuilt after an actor died
        self.checkpointed = time.perf_counter()

    # -- calls that work the same over Ray and in-process ---------------------------------------
    def _spawn(self, cls: type, *args: Any, num_gpus: float = 0, here: bool = False, restart: bool = False,
               name: str | None = None) -> Any:
        """Create an actor (``here``: on the driver's node, e.g. the writer of a local path;
        ``restart``: Ray restarts it if its process dies, and the run goes on; ``name``: others find it so)."""
        if not self.use_ray:
            return cls(*args)
        options: dict[str, Any] = {"num_cpus": 0, "num_gpus": num_gpus, "max_restarts": MAX_RESTARTS if restart else 0,
                                   "name": name}
        if here:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False)
        elif len([n for n in ray.nodes() if n["Alive"]]) > 1:  # a cluster: spread over its nodes
            options["scheduling_strategy"] = "SPREAD"
        return ray.remote(**options)(cls).remote(*args)

    def placement(self) -> dict[str, str]:
        """The node each actor runs on, as ``IP/node-id prefix`` ({} in-process)."""
        if not self.use_ray:
            return {}
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        actors = {"env": self.env, "perception": self.perception, "policy": self.policy,
                  "learner": self.learner, "recorder": self.recorder}
        where = {name: a.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
                 for name, a in actors.items() if a is not None}
        nodes = {name: self._get(ref, name) for name, ref in where.items()}
        return {name: f"{ips.get(node, '?')}/{node[:8]}" for name, node in nodes.items()}

    def _actors(self) -> dict[str, Any]:
        """The restartable actors (those that hold no run state), by name."""
        return {"perception": self.perception, "policy": self.policy, "learner": self.learner}

    def _load_state(self, names: tuple[str, ...]) -> None:
        """Put the newest checkpoint's weights back into the named actors."""
        assert self.state is not None
        task = self._get(self._call(self.env, "progress"), "env")["task"]
        for name in names:
            args = (self.state[name], task) if name == "learner" else (self.state[name],)
            self._get(self._call(self._actors()[name], "load_state_dict", *args), name)

    def _pids(self) -> dict[str, int]:
        """The process id of each restartable actor ({} in-process)."""
        if not self.use_ray:
            return {}
        names = list(self._actors())
        refs = [a.__ray_call__.remote(lambda _: os.getpid()) for a in self._actors().values()]
        return dict(zip(names, ray.get(refs, timeout=self.cfg.hop_timeout_s)))  # a dead actor raises, as in _recover

    def _count_restarts(self) -> list[str]:
        """Actors whose process changed since last looked at (Ray restarted them); counts them."""
        now = self._pids()
        restarted = [name for name, pid in now.items() if self.pids.get(name) != pid]
        self.pids = now
        self.restarts += len(restarted)
        return restarted

    def _call(self, actor: Any, method: str, *args: Any) -> Any:
        return getattr(actor, method).remote(*args) if self.use_ray else getattr(actor, method)(*args)

    def _get(self, value: Any, who: str, timeout: float | None = None) -> Any:
        if not self.use_ray:
            return value
        try:
            return ray.get(value, timeout=timeout or self.cfg.hop_timeout_s)
        except ray.exceptions.GetTimeoutError:
            raise ChannelTimeout(f"the {who} actor did not answer for "
                                 f"{timeout or self.cfg.hop_timeout_s:.0f} s") from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise ActorFailed(f"the {who} actor failed: {type(cause).__name__}: {cause}") from None
        except ray.exceptions.RayActorError as exc:
            raise ActorFailed(f"the {who} actor died: {_last_error_line(exc)}") from None

    # -- the run --------------------------------------------------------------------------------
    @property
    def batches_per_task(self) -> int:
        """Batched steps of each task of the sequence (its share of ``steps``, rounded up)."""
        assert self.sequence is not None and self.cfg.steps is not None
        return math.ceil(self.cfg.steps / self.sequence.n_tasks / self.cfg.num_envs)

    def run(self, on_progress: Callable[[dict[str, Any]], None] | None = None,
            progress_every_s: float = 0.5) -> dict[str, Any]:
        """Step until the step or episode budget is spent; returns the summary."""
        cfg = self.cfg
        started = time.perf_counter()
        interrupted = False
        try:
            obs = self._call(self.env, "reset")
            if self.sequence is None:
                left = cfg.steps - (self.resume.steps if self.resume else 0) if cfg.steps is not None else None
                n_batches = math.ceil(left / cfg.num_envs) if left is not None else None
                self._loop(obs, n_batches, started, on_progress, progress_every_s)
            else:
                self._run_tasks(obs, started, on_progress, progress_every_s)
        except KeyboardInterrupt:  # Ctrl-C: stop stepping, still commit what was seen
            interrupted = True
        elapsed = time.perf_counter() - started
        self._teardown_graph()
        env_stats = self._get(self._call(self.env, "finish"), "env")
        return {**self._summary(env_stats, elapsed), "interrupted": interrupted}

    def _run_tasks(self, obs: Any, started: float, on_progress: Callable[[dict[str, Any]], None] | None,
                   progress_every_s: float) -> None:
        """Each task in turn (a resumed run: from its task, less the steps done); after a task's last
        step (the in-flight window drained), its checkpoint."""
        first = self.resume.task if self.resume else 0
        done = self.resume.task_steps if self.resume else 0
        for task in range(first, self.sequence.n_tasks):
            batches = self.batches_per_task
            if task > first:
                obs = self._call(self.env, "switch_task", task)
                self._get(self._call(self.learner, "task_boundary", task), "learner")
            else:
                batches = math.ceil((batches * self.cfg.num_envs - done) / self.cfg.num_envs)
            self._loop(obs, batches, started, on_progress, progress_every_s)
            self._save_checkpoint(f"task_{task}.pt", task=task, task_name=self.sequence.names[task])

    def _compile_hot_path(self) -> Any:
        """obs → perception → policy → env → next obs as a ring of pipes or a Ray Compiled Graph
        (None: actor calls); see ``AgentConfig.transport``."""
        transport = self.cfg.transport
        if transport not in TRANSPORTS:
            raise ValueError(f"transport must be one of {', '.join(TRANSPORTS)}, got {transport!r}")
        if not self.use_ray or transport == "actor":
            return None
        # auto: not across nodes (pipes are local), and not for MuJoCo envs, whose EGL context is
        # current on the actor's main thread while pipe or compiled-graph stages run on another
        if transport == "auto" and (self.spec["gl"] or len([n for n in ray.nodes() if n["Alive"]]) > 1):
            return None
        if transport == "compiled":
            from ray.dag import InputNode

            with InputNode() as inp:
                dag = self.env.step.bind(self.policy.act.bind(self.perception.encode.bind(inp)))
            return dag.experimental_compile()
        timeout = self.cfg.hop_timeout_s
        stages = [(self.perception, "encode"), (self.policy, "act"), (self.env, "step")]
        return PipeRing(stages, on_ray_actors(timeout), timeout)

    def _recover(self, exc: BaseException) -> Any:
        """A hot-path actor died: Ray restarts it (perception, policy); go on from the env's latest
        observation. The env and recorder are not restarted: they hold the run's episodes."""
        self.recoveries += 1
        if self.recoveries > MAX_RESTARTS:
            raise ActorFailed(f"actors on the hot path died {self.recoveries} times; the last: "
                              f"{_last_error_line(exc)}") from None
        deadline = time.monotonic() + self.cfg.hop_timeout_s
        while True:  # another actor may die, or still be restarting, while this one is brought back
            try:
                self._teardown_graph()
                obs = self._get(self._call(self.env, "current"), "env")  # a dead env ends the run, clearly
                for actor in (self.perception, self.policy):
                    ray.get(actor.stats.remote(), timeout=self.cfg.hop_timeout_s)  # once Ray restarted it
                restarted = self._count_restarts()
                if self.state is not None:  # a restarted actor starts from scratch: give it the newest weights
                    self._load_state(tuple(restarted))
                self.graph = self._compile_hot_path()
                return obs
            except _DIED as again:
                if time.monotonic() > deadline:
                    raise ActorFailed(f"the hot-path actors did not come back within {self.cfg.hop_timeout_s:.0f} s: "
                                      f"{_last_error_line(again)}") from None
                time.sleep(0.2)

    def _teardown_graph(self) -> None:
        """Stop the pipes or compiled graph; one whose actor died may not stop cleanly, and need not."""
        if self.graph is not None:
            try:
                self.graph.teardown()
            except ray.exceptions.RayError:
                pass
            self.graph = None

    def _caption_now(self) -> str | None:
        """Env 0's latest caption for the display (None while the perception actor restarts)."""
        try:
            return self._get(self._call(self.perception, "caption_now"), "perception")
        except ActorFailed:
            return None

    def _graph_step(self, obs: bytes) -> bytes:
        if isinstance(self.graph, PipeRing):
            try:
                return self.graph.execute(obs)
            except StageFailed as exc:
                raise ActorFailed(f"a hot-path actor failed: {exc}") from None
        try:
            return self.graph.execute(obs).get(timeout=self.cfg.hop_timeout_s)
        except ray.exceptions.RayChannelTimeoutError:
            raise ChannelTimeout(f"an env step did not complete in {self.cfg.hop_timeout_s:.0f} s: "
                                 "an actor on the hot path has stalled") from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.cause if getattr(exc, "cause", None) is not None else exc
            raise ActorFailed(f"a hot-path actor failed: {type(cause).__name__}: {cause}") from None

    def _loop(self, obs: Any, n_batches: int | None, started: float,
              on_progress: Callable[[dict[str, Any]], None] | None, progress_every_s: float) -> None:
        """Step ``n_batches`` batches from the observation batch ``obs`` (None: until the episode
        budget is spent); returns when the last step has completed."""
        cfg = self.cfg
        in_flight: collections.deque[Any] = collections.deque()
        last_report = started
        k = 0
        if self.graph is not None:
            obs = self._get(obs, "env")
        base = self._get(self._call(self.env, "progress"), "env")["steps"]  # the budget counts env steps taken
        while n_batches is None or k < n_batches:
            k += 1
            try:
                if self.graph is not None:
                    obs = self._graph_step(obs)
                else:
                    percept = self._call(self.perception, "encode", obs)
                    action = self._call(self.policy, "act", percept)
                    obs = self._call(self.env, "step", action)
                if self.use_ray and self.graph is None:
                    in_flight.append(obs)
                    if len(in_flight) > cfg.depth:
                        ray.get(in_flight.popleft(), timeout=cfg.hop_timeout_s)
            except ray.exceptions.GetTimeoutError:
                raise ChannelTimeout(f"an env step did not complete in {cfg.hop_timeout_s:.0f} s: "
                                     "an actor on the hot path has stalled") from None
            except _DIED as exc:
                in_flight.clear()
                obs = self._recover(exc)
                k = (self._get(self._call(self.env, "progress"), "env")["steps"] - base) // cfg.num_envs
            now = time.perf_counter()
            every = progress_every_s if cfg.episodes is None else min(progress_every_s, 0.1)
            if now - last_report >= every:
                last_report = now
                progress = self._get(self._call(self.env, "progress"), "env")
                progress["elapsed_s"] = now - started
                progress["caption"] = self._caption_now()
                if self.sequence is not None:
                    progress["task_name"] = f"task {progress['task']}: {self.sequence.names[progress['task']]}"
                if on_progress is not None:
                    on_progress(progress)
                if self.run_dir is not None and now - self.checkpointed >= cfg.checkpoint_every_s:
                    self.checkpointed = now
                    self._save_latest(progress)
                if cfg.episodes is not None and progress["episodes"] >= cfg.episodes:
                    break
        if self.graph is None:
            self._get(obs, "env")

    def _summary(self, env_stats: dict[str, Any], elapsed: float) -> dict[str, Any]:
        perception = self._get(self._call(self.perception, "stats"), "perception")
        policy = self._get(self._call(self.policy, "stats"), "policy")
        learner = self._get(self._call(self.learner, "close"), "learner")
        recorder = (self._get(self._call(self.recorder, "close"), "recorder")
                    if self.recorder is not None else {})
        latency = {
            "env→perception": perception["hop_env_perception"],
            "perception→policy": policy["hop_perception_policy"],
            "policy→env": env_stats["hop_policy_env"],
            "policy→learner": learner["hop_policy_learner"],
        }
        if recorder:
            latency["env→recorder"] = recorder["hop_env_recorder"]
        channels = [c for c in (env_stats["channel_recorder"], policy["channel_learner"],
                                learner["channel_inbox"]) if c]
        self._save_checkpoint("final.pt", steps=env_stats["steps"], task=env_stats["task"])
        if self.use_ray:
            self._count_restarts()  # e.g. a learner that died off the hot path
        start = self.resume.steps if self.resume else 0
        resumed = None if self.resume is None else {
            "steps": self.resume.steps, "episodes": self.resume.episodes, "task": self.resume.task,
            "checkpoint": self.resume.checkpoint.name if self.resume.checkpoint else None}
        tasks = {} if self.sequence is None else {
            "tasks": self.sequence.name, "task_names": list(self.sequence.names),
            "steps_per_task": self.batches_per_task * self.cfg.num_envs,
            # a resumed run saw only the tasks from its resume point on: earlier ones are None here
            "task_returns": [None] * (self.resume.task if self.resume else 0) + env_stats["task_returns"],
            "checkpoints": [f"task_{t}.pt" for t in range(self.sequence.n_tasks)
                            if self.run_dir is not None and (self.run_dir / "checkpoints" / f"task_{t}.pt").exists()]}
        return {
            "env": self.cfg.tasks or self.cfg.env_id,
            "captioner": self.cfg.captioner,
            "transport": self.transport,
            "placement": self.placement(),
            "restarts": self.restarts,
            "episodes": env_stats["episodes"],
            "steps": env_stats["steps"],
            "mean_return_last20": env_stats["mean_return_last20"],
            "steps_per_s": (env_stats["steps"] - start) / elapsed if elapsed > 0 else 0.0,
            "resumed_from": resumed,
            "elapsed_s": elapsed,
            "run_dir": str(self.run_dir) if self.run_dir is not None else None,
            "latency_ms": latency,
            "frames_dropped": sum(c["dropped"] for c in channels),
            "channels": channels,
            "episodes_recorded": recorder.get("episodes_committed", 0),
            "steps_recorded": recorder.get("steps_committed", 0),
            "store_bytes": recorder.get("store_bytes", 0),
            "policy": {k: v for k, v in policy.items() if not k.startswith(("hop_", "channel_"))},
            "learner": {k: v for k, v in learner.items() if not k.startswith(("hop_", "channel_"))},
            **tasks,
        }

    def _save_checkpoint(self, name: str, **meta: Any) -> None:
        """Save the perception, policy and learner weights (plus ``meta``) to ``checkpoints/NAME``;
        they are also kept here, to put back into an actor that Ray restarts."""
        if self.run_dir is None:
            return
        self.state = {name: self._get(self._call(actor, "state_dict"), name) for name, actor in self._actors().items()}
        save_checkpoint(self.run_dir / "checkpoints" / name, {**self.state, **meta})

    def _save_latest(self, progress: dict[str, Any]) -> None:
        """The periodic ``latest.pt`` that ``--resume`` goes on from; skipped (the next one will come)
        while an actor is down, which the hot path is already handling."""
        try:
            self._save_checkpoint("latest.pt", steps=progress["steps"], task=progress["task"])
        except ActorFailed:
            pass

    def shutdown(self) -> None:
        """Tear the compiled hot path down and kill the actors (a no-op in-process)."""
        self._teardown_graph()
        if self.use_ray:
            for actor in (self.env, self.perception, self.policy, self.learner, self.recorder):
                if actor is not None:
                    ray.kill(actor)
