"""A run's store into a Rerun recording: the same picture a live ``--view`` gives, after the fact.

Works on a finished, running or crashed run alike (it reads what was committed). Besides the
episodes (``viewer/episodes.py``): the learner's memories at their last save (``memory/cache_size``,
``memory/spectral_rank/column{m}``, at the run's last step: the store keeps no earlier save), and ``thalamus replay``'s forgetting matrix picture
(``run/replay``) when the run has one.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np

from memory import EpisodeStore, caption_decoder, load_learner_memory, read_manifest
from viewer.episodes import EpisodeLog
from viewer.layout import run_layout
from viewer.target import require_rerun

REPLAY_PICTURE = "forgetting.png"  # what `thalamus replay` draws into the run by default


def env_lanes(store: EpisodeStore) -> tuple[np.ndarray, str]:
    """Each episode's env index, and the entity prefix to log under. From the ``env`` column when
    the store has one; an older store's episodes are laid in lanes instead (each the next episode
    that starts after the lane's last one ended: a valid split, but two envs ending together may
    swap lanes, hence the name ``lane``)."""
    ends = store.episode_ends
    starts = np.concatenate(([0], ends[:-1]))
    if "env" in store.keys:
        return store.column("env")[starts].astype(np.int64), "env"
    steps = store.column("step")
    lanes, last = np.zeros(len(ends), np.int64), []
    for i, (a, b) in enumerate(zip(starts, ends)):
        free = [k for k, s in enumerate(last) if s < steps[a]]
        lane = free[0] if free else len(last)
        if lane == len(last):
            last.append(0)
        last[lane] = int(steps[b - 1])
        lanes[i] = lane
    return lanes, "lane"


def log_run(rec: Any, store: EpisodeStore, episodes: list[int], fps: float,
            progress: Callable[[int, int], None] | None = None) -> dict[str, Any]:
    """Log ``episodes`` of ``store`` (and the run's memories and replay picture) to ``rec``; what was logged."""
    rr = require_rerun()
    run_dir = store.path.parent
    manifest = read_manifest(run_dir) if (run_dir / "run.json").exists() else {}
    vocab = manifest.get("caption_vocab")
    names = manifest.get("task_names")
    log = EpisodeLog(rec, fps=fps, decode=caption_decoder(vocab)[0] if "caption" in store.keys else None,
                     task_names=names if isinstance(names, list) else None)
    lanes, prefix = env_lanes(store)
    rec.send_blueprint(run_layout(int(lanes.max()) + 1 if len(lanes) else 1, prefix))
    tasks = store.episode_tasks
    for n, i in enumerate(episodes):
        log.log(int(lanes[i]), store.get_episode(i), int(tasks[i]), prefix=prefix)
        if progress is not None:
            progress(n + 1, len(episodes))
    out: dict[str, Any] = {"episodes": len(episodes), "steps": int(store.episode_lengths[episodes].sum()),
                           "entities": prefix}
    memory = load_learner_memory(store.path)
    if memory is not None:  # the store keeps the last save only: shown at the run's last step
        last = int(store.column("step")[-1]) if "step" in store.keys else store.n_steps
        if memory.cache is not None:
            log.scalar("memory/cache_size", last, float(memory.cache.attrs.get("size", 0)))
        for m, block in enumerate(memory.spectral):
            log.scalar(f"memory/spectral_rank/column{m}", last, float(block.attrs.get("rank", 0)))
        out["memory_updates"] = memory.step
    picture = run_dir / REPLAY_PICTURE
    if picture.is_file():
        rec.log("run/replay", rr.EncodedImage(path=picture), static=True)
        out["replay"] = str(picture)
    return out

