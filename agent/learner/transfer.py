"""Continual World's forward transfer of a task-sequence run, from its training episodes and those of
single-task reference runs (behind `thalamus replay --reference DIR`).

Forward transfer asks whether a task was learned faster after the tasks before it than from
scratch: per task, ``(AUC − AUC_ref) / (1 − AUC_ref)`` (`forgetting.normalized_transfer`), where
AUC is the area under the task's success curve while it trained in the sequence and AUC_ref the same
in a run of that task alone with the same budget.

**The curves come from the stored training episodes**, not from separate evaluations (Continual
World evaluates the policy every few thousand steps; a run here stores every episode it played): a
task's training is cut into ten equal spans of its stored steps and the curve is the success rate
of the episodes that finished in each (`forgetting.success_auc`). An episode is placed where it
ended, at the share of the task's stored steps that the episodes finished by then hold; only
episodes that ended by themselves count (one cut short by the task's end or the run's stop has no
outcome). These are the episodes of the stochastic training policy, as in Continual World
(``test/stochastic``). Success only: a sequence scored by return has no tasks a single-task run can
be made of, so no reference to compare with.

**Reference layout**: one run directory per task, named as the task is in the sequence, each made
with ``thalamus run --env Meta-World/TASK`` and the sequence run's ``--steps-per-task`` as its
``--steps`` (and its other flags)::

    REF/
      reach-v3/                  thalamus run --env Meta-World/reach-v3 --steps 20000 --run-dir REF/reach-v3
      button-press-topdown-v3/   thalamus run --env Meta-World/button-press-topdown-v3 --steps 20000 ...
      ...

A task without its folder gets no forward transfer (the note says so); a folder that is not a run of
its task's env is refused.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from agent.learner.forgetting import normalized_transfer, success_auc
from envs.metaworld import PREFIX
from envs.tasks import TaskSequence
from memory import EpisodeStore, StoreError, open_store, read_manifest


class ReferenceRunError(ValueError):
    """A --reference directory that cannot serve; the message says what and what it should hold."""


@dataclass
class ForwardTransfer:
    """Forward transfer of a run's tasks, with the areas it came from; None where it cannot be had."""

    value: float | None  # mean over the tasks that have one
    per_task: list[float | None]
    auc: list[float | None]  # the area under each task's success curve in the sequence run
    reference_auc: list[float | None]  # the same in each task's reference run
    reference_steps: list[int | None]  # the steps each reference run stored (compare: the run's per task)
    note: str | None  # why some or all tasks have none (None: every task has one)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def reference_runs(reference: Path, seq: TaskSequence, k: int) -> list[Path | None]:
    """The reference run of each of ``seq``'s first ``k`` tasks under ``reference`` (None: no folder);
    ReferenceRunError for a sequence without success, a missing directory, a folder that is not a
    run of its task's env, or a directory with none of the tasks."""
    if not seq.reports_success:
        raise ReferenceRunError(f"--reference: forward transfer compares success curves, and {seq.name}'s tasks "
                                "report no success (Meta-World's sequences do: cw10, mw-easy)")
    if not reference.is_dir():
        raise ReferenceRunError(f"--reference {reference}: no such directory")
    runs: list[Path | None] = []
    for name in seq.names[:k]:
        run = reference / name
        if not run.is_dir():
            runs.append(None)
            continue
        if not (run / "run.json").is_file():
            raise ReferenceRunError(f"--reference: '{run}' is not a thalamus run (it has no run.json); make it with "
                                    f"`thalamus run --env {PREFIX}{name} --run-dir {run}`")
        manifest = read_manifest(run)
        env = (manifest.get("config") or {}).get("env_id")
        if manifest.get("sequence") is not None or env != PREFIX + name:
            made = f"--tasks {manifest['sequence']}" if manifest.get("sequence") else f"--env {env}"
            raise ReferenceRunError(f"--reference: '{run}' is a run of {made}, not of {PREFIX}{name} alone")
        runs.append(run)
    if not any(runs):
        raise ReferenceRunError(f"--reference {reference}: it holds a run of none of the tasks (expected "
                                f"{reference / seq.names[0]}/, … one folder per task, named as the task)")
    return runs


def forward_transfer(run_dir: Path, seq: TaskSequence, k: int, references: list[Path | None] | None) -> ForwardTransfer:
    """Forward transfer of the first ``k`` tasks of the sequence run ``run_dir`` against
    ``references`` (`reference_runs`; None: no reference given, only the run's own areas)."""
    if not seq.reports_success:
        return ForwardTransfer(None, [None] * k, [None] * k, [None] * k, [None] * k,
                               f"forward transfer compares success curves; {seq.name}'s tasks report no success")
    missing: list[str] = []
    store, why = _store(run_dir)
    auc = [None if store is None else _auc(store, j) for j in range(k)]
    ref_auc: list[float | None] = [None] * k
    ref_steps: list[int | None] = [None] * k
    per_task: list[float | None] = [None] * k
    for j, name in enumerate(seq.names[:k]):
        if store is None:
            missing.append(f"{name} (the run's store {why})")
        elif auc[j] is None:
            missing.append(f"{name} (no training episode of it finished)")
        if references is None:
            continue
        if references[j] is None:
            missing.append(f"{name} (no reference run {name}/)")
            continue
        ref, ref_why = _store(references[j])
        if ref is None:
            missing.append(f"{name} (its reference run's store {ref_why})")
            continue
        ref_auc[j], ref_steps[j] = _auc(ref, None), ref.n_steps
        if ref_auc[j] is None:
            missing.append(f"{name} (no episode of its reference run finished)")
        elif auc[j] is not None:
            per_task[j] = normalized_transfer(auc[j], ref_auc[j])
            if per_task[j] is None:
                missing.append(f"{name} (its reference run succeeded throughout)")
    have = [v for v in per_task if v is not None]
    if references is None:
        note = "no --reference: forward transfer needs single-task runs of the same tasks (one folder each)"
    else:
        note = f"none for {', '.join(missing)}" if missing else None
    return ForwardTransfer(float(np.mean(have)) if have else None, per_task, auc, ref_auc, ref_steps, note)


def _store(run_dir: Path) -> tuple[EpisodeStore | None, str]:
    """A run's store, or None and why it cannot be read (forward transfer is left out, not the replay)."""
    try:
        return open_store(run_dir), ""
    except StoreError as exc:
        return None, f"cannot be read: {exc}"


def _auc(store: EpisodeStore, task: int | None) -> float | None:
    """The area under the success curve of ``task``'s episodes in ``store`` (None: all of them)."""
    if not store.n_episodes or "success" not in store.keys:
        return None
    rows = np.ones(store.n_episodes, bool) if task is None else store.episode_tasks == task
    ends = np.cumsum(store.episode_lengths[rows])  # the task's stored steps up to each episode's end
    if not len(ends):
        return None
    done = store.episode_complete[rows]
    successes = store.episode_returns("success")[rows] > 0  # the env said success at some step
    return success_auc(successes[done], ends[done], int(ends[-1]))
