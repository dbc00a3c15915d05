"""The end-of-run summary: what the run did, how fast, where its time went, and what it kept."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.checkpoints import CHECKPOINTS, ResumePoint
from agent.config import AgentConfig
from envs.tasks import TaskSequence


@dataclass
class ActorStats:
    """What each actor reported when the run ended (``recorder`` is {} without a run store)."""

    env: dict[str, Any]
    perception: dict[str, Any]  # with a captioner, the CaptionActor's stats too
    policy: dict[str, Any]
    learner: dict[str, Any]
    recorder: dict[str, Any]


def summarize(cfg: AgentConfig, stats: ActorStats, elapsed: float, run_dir: Path | None,
              sequence: TaskSequence | None, resume: ResumePoint | None, steps_per_task: int | None,
              **run: Any) -> dict[str, Any]:
    """The summary ``thalamus run`` prints and keeps in run.json; ``run`` adds the driver's own
    facts (transport, placement, restarts, interrupted)."""
    env, perception, policy, learner, recorder = (stats.env, stats.perception, stats.policy, stats.learner,
                                                  stats.recorder)
    latency = {"env→perception": perception["hop_env_perception"],
               "perception→policy": policy["hop_perception_policy"],
               "policy→env": env["hop_policy_env"],
               "policy→learner": learner["hop_policy_learner"]}
    if recorder:
        latency["env→recorder"] = recorder["hop_env_recorder"]
    channels = [c for c in (env["channel_recorder"], perception.get("channel_captioner"),
                            perception.get("channel_recorder"), policy["channel_learner"], learner["channel_inbox"]) if c]
    start = resume.steps if resume else 0
    resumed = None if resume is None else {
        "steps": resume.steps, "episodes": resume.episodes, "task": resume.task,
        "checkpoint": resume.checkpoint.name if resume.checkpoint else None}
    checkpoints = sorted(p.name for p in (run_dir / CHECKPOINTS).glob("*.pt")) if run_dir is not None else []
    tasks = {} if sequence is None else {
        "tasks": sequence.name, "task_names": list(sequence.names), "steps_per_task": steps_per_task,
        # a resumed run saw only the tasks from its resume point on: earlier ones are None here
        "task_returns": [None] * (resume.task if resume else 0) + env["task_returns"],
        **({"task_success": [None] * (resume.task if resume else 0) + env["task_success"]}
           if "task_success" in env else {})}
    return {
        "env": cfg.tasks or cfg.env_id,
        "captioner": cfg.captioner,
        **run,
        "episodes": env["episodes"],
        "steps": env["steps"],
        "mean_return_last20": env["mean_return_last20"],
        **({"success_rate_last20": env["success_rate_last20"]} if "success_rate_last20" in env else {}),
        **({"late_steps": env["late_steps"]} if "late_steps" in env else {}),  # a robot's steps that missed their tick
        "steps_per_s": (env["steps"] - start) / elapsed if elapsed > 0 else 0.0,
        "resumed_from": resumed,
        "elapsed_s": elapsed,
        "run_dir": str(run_dir) if run_dir is not None else None,
        "checkpoints": checkpoints,
        "latency_ms": latency,
        "frames_dropped": sum(c["dropped"] for c in channels),
        "channels": channels,
        "episodes_recorded": recorder.get("episodes_committed", 0),
        "steps_recorded": recorder.get("steps_committed", 0),
        "captions_missing": recorder.get("captions_missing", 0),
        **({"caption_lag_steps": perception["caption_lag_steps"]} if "caption_lag_steps" in perception else {}),
        # steps whose own frame the captioner skipped to keep up (they carry the next captioned frame's caption)
        **({"captions_skipped": perception["captions_skipped"]} if "captions_skipped" in perception else {}),
        # a CPU captioner runs at idle priority until other work starves it (BENCHMARKS.md, issue 15)
        **({"caption_idle_until": perception["caption_idle_until"]} if "caption_idle_until" in perception else {}),
        "store_bytes": recorder.get("store_bytes", 0),
        **({"view": recorder["view"]} if "view" in recorder else {}),  # --view: where it went, what was dropped
        "policy": {k: v for k, v in policy.items() if not k.startswith(("hop_", "channel_"))},
        "learner": {k: v for k, v in learner.items() if not k.startswith(("hop_", "channel_"))},
        **tasks,
    }
