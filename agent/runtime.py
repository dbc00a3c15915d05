"""The agent: creates its actors for one run, starts the ring, watches it, and ends the run.

```
 EnvActor ─obs─▶ PerceptionActor ─percept─▶ PolicyActor ─action─▶ EnvActor     the hot ring (agent/hot_loop.py)
    │                  └──captions──┐          └─transitions─▶ LearnerActor  off the hot path
    └──────episodes────────────────▶ RecorderActor ─▶ store.zarr
```

The driver never touches a frame: it links perception and the policy for the EnvActor
(agent/transport.py) and gives it a budget, then every ``progress_every_s``
reads its status for the live display, takes a checkpoint of one moment every
``checkpoint_every_s`` (agent/recovery.py), and brings the ring back when a perception or policy
process died. With a task sequence the ring runs one task at a time; between two tasks the driver
saves ``task_<i>.pt``, tells the learner, and moves the envs on. With ``use_ray=False`` the same
classes run in one process (the tests' and the pipeline benchmark's baseline).
"""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from agent.channels import ChannelTimeout
from agent.checkpoints import ResumePoint, load_tensors
from agent.config import AgentConfig, PPOConfig, env_resources
from agent.env_actor import EnvActor
from agent.hot_loop import RingBudget
from agent.learner.actor import LearnerActor
from agent.perception.actor import PerceptionActor
from agent.perception.caption_actor import COMPILE_MIN_STEPS, CaptionActor
from agent.policy.actor import FEED_EVERY, PolicyActor
from agent.policy.diffusion import SamplerConfig
from agent.recorder import RecorderActor, store_specs
from agent.recovery import MAX_RESTARTS, RESTARTABLE, ActorFailed, Supervisor, call, call_when_up, get
from agent.summary import ActorStats, summarize
from agent.transport import PeerDied, link, one_node, uses_pipes
from envs.tasks import TaskSequence, task_sequence

Progress = Callable[[dict[str, Any]], None]
START_TIMEOUT_S = 300.0  # actors' first answers: starting processes and importing torch takes minutes on a loaded 2-core machine
RELEASE_TIMEOUT_S = 15.0  # a robot's disconnect has its own timeout (envs/robot.py); this bounds them all
MIN_WATCH_S = 0.05  # the driver looks at the ring at most 20 times a second: more would only steal the ring's core


class Agent:
    """Creates the actors for one run and drives them; ``run`` returns the summary."""

    def __init__(self, cfg: AgentConfig, run_dir: Path | None, use_ray: bool = True,
                 resume: ResumePoint | None = None, state: dict[str, Any] | None = None) -> None:
        """``resume``: go on with the stopped run in ``run_dir`` from this point (agent/checkpoints.py),
        with the models of ``state`` (its checkpoint, already loaded; else loaded here)."""
        self.cfg, self.run_dir, self.use_ray, self.resume = cfg, run_dir, use_ray, resume
        self.sequence: TaskSequence | None = task_sequence(cfg.tasks) if cfg.tasks is not None else None
        if self.sequence is not None and (cfg.steps is None or cfg.episodes is not None):
            raise ValueError("a task sequence's budget is steps: set steps and leave episodes None")
        from agent.perception.live import resolve_captioner

        path = resolve_captioner(cfg.captioner, cfg.env_id if self.sequence is None else self.sequence.base_env)
        captioner = str(path) if path is not None else None
        gpu = 0.25 if cfg.device.startswith("cuda") and use_ray else 0
        caption_len = 0
        from agent.perception.train import checkpoint_config

        if captioner is not None:
            caption_len = checkpoint_config(Path(captioner)).max_len
        # a resumed run's envs are seeded past the original ones, so its new episodes are new
        start_s = max(cfg.hop_timeout_s, START_TIMEOUT_S)
        env_seed = cfg.seed + (resume.steps if resume else 0)
        self.env = self._spawn(EnvActor, cfg.env_id, cfg.num_envs, cfg.frame_size, env_seed,
                               resume.task if resume else 0, cfg.episodes, cfg.tasks, cfg.env_options(),
                               resources=env_resources(cfg.env_resources))
        if resume is not None:
            get(call(self.env, "continue_from", resume.steps, resume.episodes, resume.started, resume.returns),
                "env", start_s)
        spec = get(call(self.env, "spec"), "env", start_s)
        self.viewer, self.view_url, viewer_name = None, None, None
        if cfg.view is not None and run_dir is not None:  # the recorder forwards what it commits
            from viewer.actor import ViewerActor

            vocab = list(checkpoint_config(Path(captioner)).vocab) if captioner is not None else None
            viewer_name = f"thalamus-viewer-{uuid.uuid4().hex[:12]}"
            self.viewer = self._spawn(ViewerActor, cfg.view, run_dir.name, cfg.num_envs, vocab,
                                      list(self.sequence.names) if self.sequence else None, cfg.view_fps,
                                      here=True, name=viewer_name)
            self.view_url = get(call(self.viewer, "url"), "viewer", start_s)
        recorder_name, captioner_name = (f"thalamus-{part}-{uuid.uuid4().hex[:12]}" for part in ("recorder", "captioner"))
        self.recorder = (self._spawn(RecorderActor, str(run_dir), store_specs(spec, caption_len), 15.0,
                                     viewer_name if use_ray else self.viewer, here=True, restart=True,
                                     name=recorder_name)
                         if run_dir is not None else None)
        # a diffusion policy (--policy) acts on the env's own state: it normalizes it itself
        # restartable actors find the actor they send to by its name: a handle would be a constructor
        # argument kept in the object store, which Ray warns a restart may not find
        self.captioner, caption_size = None, 0
        if captioner is not None:
            caption_size = checkpoint_config(Path(captioner)).frame_size
            self.captioner = self._spawn(CaptionActor, captioner, cfg.num_envs, cfg.device,
                                         self._named(self.recorder, recorder_name), cfg.caption_skip,
                                         (cfg.steps or 0) >= COMPILE_MIN_STEPS, num_gpus=gpu, restart=True,
                                         name=captioner_name)
        self.perception = self._spawn(PerceptionActor, spec["state_dim"], cfg.perception, cfg.seed, cfg.device,
                                      cfg.policy is None, self._named(self.captioner, captioner_name), caption_size,
                                      self.captioner is not None and self.use_ray and uses_pipes(self.cfg.transport),
                                      num_gpus=gpu, restart=True)
        percept_dim = PerceptionActor.percept_dim(spec["state_dim"], cfg.perception)
        learner_name = f"thalamus-learner-{uuid.uuid4().hex[:12]}"
        self.learner = self._spawn(LearnerActor, percept_dim, spec["action_dim"], cfg.learner, cfg.seed, cfg.device,
                                   str(run_dir) if run_dir is not None else None, num_gpus=gpu,
                                   here=run_dir is not None, restart=True, name=learner_name)
        ppo = cfg.ppo or PPOConfig.for_actions(spec["discrete"])
        ppo = replace(ppo, anneal_lr=ppo.anneal_lr and self.sequence is None)  # a continual learner has no known end
        # the policy finds the learner by name: a handle would be a constructor argument kept in the
        # object store, which Ray warns a restart may not find
        sampler = SamplerConfig(cache=cfg.step_cache, threshold=cfg.cache_threshold)
        self.policy = self._spawn(PolicyActor, percept_dim, spec, cfg.num_envs, ppo, cfg.steps, cfg.seed,
                                  learner_name if use_ray else self.learner, FEED_EVERY, cfg.policy, sampler,
                                  restart=True)
        get(call(self.env, "attach", self.recorder), "env", start_s)
        self.actors = {"perception": self.perception, "policy": self.policy, "learner": self.learner,
                       "recorder": self.recorder, "captioner": self.captioner}
        for name, actor in self.actors.items():  # started: from here on a silent actor is a stalled one
            if actor is not None:
                get(call(actor, "stats"), name, start_s)
        self.supervisor = Supervisor(self.actors, self.env, run_dir, cfg.hop_timeout_s)
        if state is None and resume is not None and resume.checkpoint is not None:
            state = load_tensors(resume.checkpoint)
        if state is not None:
            self.supervisor.restore(state, RESTARTABLE)
        self.checkpointed = time.perf_counter()

    def _named(self, actor: Any, name: str) -> Any:
        """What a restartable actor is given to reach ``actor``: its Ray name, or in-process the object."""
        return None if actor is None else (name if self.use_ray else actor)

    def _spawn(self, cls: type, *args: Any, num_gpus: float = 0, here: bool = False, restart: bool = False,
               name: str | None = None, resources: dict[str, float] | None = None) -> Any:
        """Create an actor (``here``: on the driver's node, e.g. the writer of a local path;
        ``restart``: Ray restarts it if its process dies, and the run goes on; ``name``: others find it so;
        ``resources``: on a node that advertises these custom resources, e.g. the robot's computer)."""
        if not self.use_ray:
            return cls(*args)
        options: dict[str, Any] = {"num_cpus": 0, "num_gpus": num_gpus, "max_restarts": MAX_RESTARTS if restart else 0,
                                   "name": name}
        if resources:
            options["resources"] = resources
        elif here:
            options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(
                ray.get_runtime_context().get_node_id(), soft=False)
        elif not one_node():  # a cluster: spread over its nodes
            options["scheduling_strategy"] = "SPREAD"
        return ray.remote(**options)(cls).remote(*args)

    def placement(self) -> dict[str, str]:
        """The node each actor runs on, as ``IP/node-id prefix`` ({} in-process)."""
        if not self.use_ray:
            return {}
        ips = {n["NodeID"]: n["NodeManagerAddress"] for n in ray.nodes()}
        actors = {"env": self.env, **{k: v for k, v in self.actors.items() if v is not None}}
        where = {name: a.__ray_call__.remote(lambda _: ray.get_runtime_context().get_node_id())
                 for name, a in actors.items()}
        nodes = {name: get(ref, name, self.cfg.hop_timeout_s) for name, ref in where.items()}
        return {name: f"{ips.get(node, '?')}/{node[:8]}" for name, node in nodes.items()}

    @property
    def steps_per_task(self) -> int:
        """Env steps of each task of the sequence: its share of ``steps``, in whole batches."""
        assert self.sequence is not None and self.cfg.steps is not None
        return math.ceil(self.cfg.steps / self.sequence.n_tasks / self.cfg.num_envs) * self.cfg.num_envs

    # -- the run ------------------------------------------------------------------------------------
    def run(self, on_progress: Progress | None = None, progress_every_s: float = 0.5) -> dict[str, Any]:
        """Step until the step or episode budget is spent (or Ctrl-C); returns the summary."""
        started = time.perf_counter()
        interrupted = False
        try:
            if self.sequence is None:
                self._watch(RingBudget(self.cfg.steps), started, on_progress, progress_every_s)
            else:
                self._run_tasks(started, on_progress, progress_every_s)
        except KeyboardInterrupt:  # Ctrl-C: stop stepping, still commit what was seen
            interrupted = True
            get(call(self.env, "stop"), "env", self.cfg.hop_timeout_s)
        elapsed = time.perf_counter() - started
        return self._finish(elapsed, interrupted)

    def _run_tasks(self, started: float, on_progress: Progress | None, progress_every_s: float) -> None:
        """Each task in turn (a resumed run: from its task, less the steps done), a checkpoint after each."""
        assert self.sequence is not None
        first = self.resume.task if self.resume else 0
        done = self.resume.task_steps if self.resume else 0
        restored = (self.supervisor.state or {}).get("learner", {}).get("task", first)
        for task in range(first, self.sequence.n_tasks):
            if task > first or restored < first:  # a resume from the end of the previous task's checkpoint
                get(call(self.learner, "task_boundary", task), "learner", self.cfg.hop_timeout_s)
            if task > first:
                get(call(self.env, "switch_task", task), "env", self.cfg.hop_timeout_s)
            steps_now = get(call(self.env, "progress"), "env", self.cfg.hop_timeout_s)["steps"]
            left = self.steps_per_task - (done if task == first else 0)
            self._watch(RingBudget(steps_now + left), started, on_progress, progress_every_s)
            self.supervisor.checkpoint(f"task_{task}.pt", task=task, task_name=self.sequence.names[task])

    def _watch(self, budget: RingBudget, started: float, on_progress: Progress | None,
               progress_every_s: float) -> None:
        """Start the ring and watch it until its budget is spent: the live display, periodic
        checkpoints, and recovery when a ring peer died."""
        cfg = self.cfg
        period = max(progress_every_s, MIN_WATCH_S)
        self._start_ring(budget)
        while True:
            status = get(call(self.env, "watch", period), "env", cfg.hop_timeout_s + period)
            now = time.perf_counter()
            if self.viewer is not None:
                self._view_status(status, now - started)
            if on_progress is not None:
                on_progress({**status, "elapsed_s": now - started, "caption": self._caption_now(),
                             "task_name": self._task_name(status["task"])})
            if status["state"] == "done":
                return
            if status["state"] == "failed":
                raise ActorFailed(status["error"])
            if status["state"] == "broken":
                self.supervisor.recover(status["error"])
                self._start_ring(budget)
            elif self.run_dir is not None and now - self.checkpointed >= cfg.checkpoint_every_s:
                self.checkpointed = now
                self._save_latest(status)

    def _view_status(self, status: dict[str, Any], elapsed_s: float) -> None:
        """The run's counters to the viewer (not waited for: the viewer never holds the run up)."""
        hop = status.get("hop_policy_env") or {}
        done = status["steps"] - (self.resume.steps if self.resume else 0)  # this sitting's steps
        values = {"steps_per_s": done / max(elapsed_s, 1e-9),
                  "mean_return_last20": status.get("mean_return_last20", math.nan),
                  "latency/policy_env_p50_ms": hop.get("p50_ms", math.nan),
                  "latency/policy_env_p99_ms": hop.get("p99_ms", math.nan)}
        if "success_rate_last20" in status:
            values["success_rate_last20"] = status["success_rate_last20"]
        call(self.viewer, "status", status["steps"], {k: v for k, v in values.items() if math.isfinite(v)})

    def _start_ring(self, budget: RingBudget) -> None:
        """Link perception and the policy for the EnvActor (agent/transport.py) and start the ring; a
        peer found dead while linking is brought back first."""
        while True:
            try:
                ring_link = link(self.cfg.transport, self.perception, self.policy, self.cfg.hop_timeout_s)
                break
            except PeerDied as exc:
                self.supervisor.recover(str(exc))
        get(call(self.env, "start", budget, ring_link), "env", self.cfg.hop_timeout_s)

    def _task_name(self, task: int) -> str | None:
        return None if self.sequence is None else f"task {task}: {self.sequence.names[task]}"

    def _caption_now(self) -> str | None:
        """Env 0's latest caption for the display (None without a captioner or while it restarts)."""
        if self.captioner is None:
            return None
        try:
            return get(call(self.captioner, "caption_now"), "captioner", self.cfg.hop_timeout_s)
        except ActorFailed:
            return None

    def _save_latest(self, status: dict[str, Any]) -> None:
        """The periodic ``latest.pt`` that ``--resume`` goes on from; skipped (the next one will come)
        while an actor is down, which the ring's recovery is already handling."""
        try:
            self.supervisor.checkpoint("latest.pt", steps=status["steps"], task=status["task"])
        except ActorFailed:
            pass

    def _finish(self, elapsed: float, interrupted: bool) -> dict[str, Any]:
        """Record the envs' open episodes, close the learner and the store, save ``final.pt``."""
        t = self.cfg.hop_timeout_s
        env = get(call(self.env, "finish"), "env", t)
        get(call(self.perception, "flush"), "perception", t)
        perception = get(call(self.perception, "stats"), "perception", t)
        if self.captioner is not None:  # its captions reach the recorder before the store closes
            get(call(self.captioner, "flush"), "captioner", t)
            perception.update(get(call(self.captioner, "stats"), "captioner", t))
        policy = get(call(self.policy, "stats"), "policy", t)
        self.supervisor.checkpoint("final.pt", steps=env["steps"], task=env["task"])
        learner = get(call(self.learner, "close"), "learner", t)
        recorder = call_when_up(self.recorder, "close", "recorder", t) if self.recorder is not None else {}
        if self.viewer is not None:
            dropped = recorder.get("channel_viewer", {}).get("dropped", 0)
            recorder["view"] = {**get(call(self.viewer, "close"), "viewer", t), "episodes_dropped": dropped}
        if self.use_ray:
            self.supervisor.count_restarts()  # e.g. a learner that died off the hot path
        return summarize(self.cfg, ActorStats(env, perception, policy, learner, recorder), elapsed, self.run_dir,
                         self.sequence, self.resume, self.steps_per_task if self.sequence else None,
                         transport=env["transport"] or "inprocess", placement=self.placement(),
                         restarts=self.supervisor.restarts, interrupted=interrupted)

    def shutdown(self) -> None:
        """Let the env actor disconnect its robots, then kill the actors (in-process: close the robots)."""
        try:
            get(call(self.env, "release"), "env", RELEASE_TIMEOUT_S)
        except (ActorFailed, ChannelTimeout):
            pass  # the env actor is gone (its process took the robot connection with it) or stuck
        if self.use_ray:
            for actor in (self.env, *self.actors.values(), self.viewer):
                if actor is not None:
                    ray.kill(actor)
