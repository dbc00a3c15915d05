"""Score a finished task-sequence run by playing its checkpoints: the forgetting matrix R (behind
`thalamus replay`).

``R[i][j]`` is the score of the models saved after task ``i`` (``checkpoints/task_<i>.pt``) on fresh
evaluation episodes of task ``j``, played by `agent.evaluation`'s loop: episode ``n`` of every task
starts from env seed ``eval_seed(seed, n)`` for every checkpoint, the policy acts deterministically
and learns nothing, with the run's frame size, camera and captioner. The score is the **success
rate** for sequences whose tasks report success (Meta-World's), the **mean return** otherwise (the
digits: answers right out of 16; cartpole-physics: steps balanced). Each cell keeps its 95% interval
(Wilson's for a rate, Student's t for a mean).

**The evaluation is stored in the run** as ``RUN_DIR/replay/eval-episodes<N>-seed<S>-maxsteps<M>.json``:
one entry per checkpoint, keyed by the sha256 of the file, holding each task's episodes (returns,
lengths, successes, with their summary). A second replay with the same options plays nothing; a
checkpoint whose bytes changed (or a run whose captioner did) is played again. The file is written
after each task's episodes (an interrupted replay keeps what it played), atomically, and nothing
else in the run dir is touched.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from agent.evaluation import Episode, EvalConfig, EvalResult, eval_tasks, load_run, run_episodes
from agent.learner.forgetting import ForgettingReport, forgetting_report, task_forgetting
from agent.learner.transfer import ForwardTransfer, forward_transfer, reference_runs
from envs.seeds import eval_seed
from envs.tasks import TaskSequence, task_sequence
from memory import read_manifest

STORED = "replay"  # the run's folder for stored evaluations
FORMAT = 1  # of the stored evaluation; bump when what an evaluation plays changes (the policy's acting, the loop)


class ScoringError(ValueError):
    """A run that cannot be scored; the message says why and what to do instead."""


class ReplayProgress(Protocol):
    """What `score_run` reports as it plays (a progress bar)."""

    def start(self, episodes: int) -> None:
        """Before any episode: how many will be played (0: every one is stored)."""

    def episode(self, checkpoint: str, episode: Episode) -> None:
        """Each episode as it ends, with the checkpoint (``task_<i>``) that played it."""


@dataclass
class RunScore:
    """The matrix R of one run, its intervals, and what follows from it (in R's units)."""

    run: str
    sequence: str
    metric: str  # "success rate" or "mean return" (higher is better, either)
    tasks: list[str]  # the tasks with a checkpoint, in the order learned (R is len(tasks) square)
    report: ForgettingReport
    intervals: list[list[tuple[float, float] | None]]  # each R[i][j]'s 95% interval (None: one episode of a return)
    transfer: ForwardTransfer
    evaluation: EvalConfig
    stored: str  # the stored evaluation's path
    played: int  # episodes played by this call (0: all read from the stored evaluation)

    @property
    def forgetting_per_task(self) -> list[float]:
        """Continual World's forgetting of each task, ``R[j][j] − R[T-1][j]``."""
        return task_forgetting(self.report.matrix)

    @property
    def cw_forgetting(self) -> float | None:
        """Its mean over every task but the last (None for a run of one task)."""
        per_task = self.forgetting_per_task[:-1]
        return sum(per_task) / len(per_task) if per_task else None

    def to_dict(self) -> dict[str, Any]:
        """The report's JSON: R, its intervals, the forgetting numbers, Continual World's, and how R was had."""
        cfg = self.evaluation
        return {"run": self.run, "sequence": self.sequence, "metric": self.metric, "tasks": self.tasks,
                **self.report.to_dict(),
                "intervals": [[None if ci is None else list(ci) for ci in row] for row in self.intervals],
                "continual_world": {"performance": self.report.average, "forgetting": self.cw_forgetting,
                                    "forgetting_per_task": self.forgetting_per_task,
                                    "forward_transfer": self.transfer.value,
                                    "forward_transfer_per_task": self.transfer.per_task, "auc": self.transfer.auc,
                                    "reference_auc": self.transfer.reference_auc,
                                    "reference_steps": self.transfer.reference_steps, "note": self.transfer.note},
                "evaluation": {"episodes": cfg.episodes, "seed": cfg.seed, "max_steps": cfg.max_steps,
                               "stored": self.stored, "played": self.played}}


def task_checkpoints(run_dir: Path, n_tasks: int) -> list[Path]:
    """``checkpoints/task_0.pt``, ``task_1.pt``, … as far as they exist without a gap."""
    paths = []
    for i in range(n_tasks):
        path = Path(run_dir) / "checkpoints" / f"task_{i}.pt"
        if not path.is_file():
            break
        paths.append(path)
    return paths


def stored_path(run_dir: Path, cfg: EvalConfig) -> Path:
    """Where ``run_dir``'s evaluation with ``cfg`` is stored."""
    return Path(run_dir) / STORED / f"eval-episodes{cfg.episodes}-seed{cfg.seed}-maxsteps{cfg.max_steps}.json"


def score_run(run_dir: Path, cfg: EvalConfig, reference: Path | None = None,
              progress: ReplayProgress | None = None) -> RunScore:
    """Score every task-boundary checkpoint of ``run_dir`` on every learned task's fresh episodes
    (played now or read from the stored evaluation), with forward transfer against ``reference``
    (`agent.learner.transfer`'s layout). EvaluationError for a bad ``cfg``, ScoringError for a run
    that cannot be scored, ReferenceRunError for a bad reference, all before anything is played."""
    run_dir = Path(run_dir)
    cfg.validate()
    seq, paths = _task_run(run_dir)
    k = len(paths)
    references = None if reference is None else reference_runs(Path(reference), seq, k)
    results, path, played = _evaluate(run_dir, seq, paths, cfg, progress)
    score = [[r.success_rate if seq.reports_success else r.mean_return for r in row] for row in results]
    intervals = [[r.success_ci95 if seq.reports_success else r.return_ci95 for r in row] for row in results]
    metric = "success rate" if seq.reports_success else "mean return"
    return RunScore(run=str(run_dir), sequence=seq.name, metric=metric, tasks=list(seq.names[:k]),
                    report=forgetting_report(score), intervals=intervals,
                    transfer=forward_transfer(run_dir, seq, k, references), evaluation=cfg, stored=str(path),
                    played=played)


def _task_run(run_dir: Path) -> tuple[TaskSequence, list[Path]]:
    """The run's task sequence and its task checkpoints; ScoringError if it has none."""
    manifest = read_manifest(run_dir)
    name = manifest.get("sequence")
    if name is None:
        env = (manifest.get("config") or {}).get("env_id", "an env")
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
    return seq, paths


# -- the evaluation, played or stored ---------------------------------------------------------------
def _evaluate(run_dir: Path, seq: TaskSequence, paths: list[Path], cfg: EvalConfig,
              progress: ReplayProgress | None) -> tuple[list[list[EvalResult]], Path, int]:
    """Every checkpoint's result on every task, ``[i][j]``; the stored evaluation's path; the episodes
    played now. Plays only the cells the stored evaluation lacks, one env per task for every checkpoint."""
    names = seq.names[:len(paths)]
    digests = [_sha256(p) for p in paths]
    captioner = _captioner_sha256(run_dir)
    path = stored_path(run_dir, cfg)
    stored = _read(path, seq, cfg, captioner)
    pending = [(i, j) for j in range(len(names)) for i in range(len(paths))
               if names[j] not in stored.get(digests[i], {})]
    if progress is not None:
        progress.start(len(pending) * cfg.episodes)
    if pending:
        policies = {i: load_run(run_dir, paths[i].stem) for i in sorted({i for i, _ in pending})}
        first = next(iter(policies.values()))
        tasks = eval_tasks(sequence=seq.name, frame_size=first.frame_size, options=first.options)
        for j in sorted({j for _, j in pending}):
            env = tasks[j].make(eval_seed(cfg.seed, 0))
            try:
                for i in (i for i, jj in pending if jj == j):
                    heard = None if progress is None else partial(progress.episode, paths[i].stem)
                    stored.setdefault(digests[i], {})[names[j]] = run_episodes(policies[i].policy, tasks[j], cfg,
                                                                               heard, env=env)
            finally:
                env.close()
            _write(path, seq, cfg, captioner, {d: (p.name, stored.get(d, {})) for d, p in zip(digests, paths)})
    return [[stored[d][name] for name in names] for d in digests], path, len(pending) * cfg.episodes


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(partial(f.read, 1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _captioner_sha256(run_dir: Path) -> str | None:
    """The digest of the captioner the run captioned with (None: it had none, or it is gone, which
    loading a checkpoint to play then reports)."""
    choice = (read_manifest(run_dir).get("config") or {}).get("captioner")
    if choice in (None, "auto", "off") or not Path(choice).is_file():
        return None
    return _sha256(Path(choice))


def _read(path: Path, seq: TaskSequence, cfg: EvalConfig, captioner: str | None) -> dict[str, dict[str, EvalResult]]:
    """The stored results, checkpoint digest → task name → result; empty if there are none for these
    options (or the file is unreadable: it is then played again and rewritten)."""
    try:
        data = json.loads(path.read_text())
        want = {"format": FORMAT, "sequence": seq.name, "episodes": cfg.episodes, "seed": cfg.seed,
                "max_steps": cfg.max_steps, "captioner_sha256": captioner}
        if any(data.get(key) != value for key, value in want.items()):
            return {}
        return {digest: {name: _result(name, cell, cfg, seq.reports_success) for name, cell in entry["tasks"].items()}
                for digest, entry in data["checkpoints"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError):
        return {}


def _result(name: str, cell: dict[str, Any], cfg: EvalConfig, success: bool) -> EvalResult:
    """One stored cell back as the episodes it was; ValueError if it is not ``cfg.episodes`` of them."""
    returns, lengths, successes = cell["returns"], cell["lengths"], cell["successes"]
    if len(returns) != cfg.episodes or len(lengths) != cfg.episodes or (successes is not None) != success:
        raise ValueError(f"a stored cell of {name} does not hold {cfg.episodes} episodes")
    return EvalResult([Episode(name, n, eval_seed(cfg.seed, n), float(returns[n]), int(lengths[n]),
                               None if successes is None else bool(successes[n])) for n in range(cfg.episodes)])


def _write(path: Path, seq: TaskSequence, cfg: EvalConfig, captioner: str | None,
           checkpoints: dict[str, tuple[str, dict[str, EvalResult]]]) -> None:
    """Store the results of the run's current checkpoints (digest → (file name, task → result)),
    replacing the file in one rename; ScoringError if the run dir cannot be written."""
    data = {"format": FORMAT, "sequence": seq.name, "episodes": cfg.episodes, "seed": cfg.seed,
            "max_steps": cfg.max_steps, "captioner_sha256": captioner,
            "checkpoints": {digest: {"file": name, "tasks": {task: r.to_dict() for task, r in results.items()}}
                            for digest, (name, results) in checkpoints.items()}}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(exist_ok=True)
        try:
            tmp.write_text(json.dumps(data, indent=1) + "\n")
            os.replace(tmp, path)
        finally:
            tmp.unlink(missing_ok=True)
    except OSError as exc:
        raise ScoringError(f"cannot store the evaluation in '{path.parent}': {exc.strerror or exc}") from None
