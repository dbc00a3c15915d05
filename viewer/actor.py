"""ViewerActor: a live run's picture in Rerun, off the hot path.

The recorder forwards each committed episode (with its captions) here, through a window that drops
rather than waits, so a slow viewer never slows the run; the driver sends the run's counters and hop
latencies as it watches. The recording goes where ``--view`` said (``viewer/target.py``).
"""

from __future__ import annotations

from typing import Any

from memory import caption_decoder
from viewer.episodes import EpisodeLog
from viewer.layout import run_layout
from viewer.target import ViewTarget, open_recording


class ViewerActor:
    """Logs a run's episodes and status to one Rerun recording."""

    def __init__(self, target: str, run_name: str, envs: int, caption_vocab: list[str] | None = None,
                 task_names: list[str] | None = None, fps: float = 10.0) -> None:
        self.target = ViewTarget.parse(target)
        self.rec, self._url = open_recording(self.target, "thalamus", run_name)
        self.rec.send_blueprint(run_layout(envs))
        decode = caption_decoder(caption_vocab)[0] if caption_vocab else None
        self.log = EpisodeLog(self.rec, fps=fps, decode=decode, task_names=task_names)
        self.episodes = 0

    def url(self) -> str | None:
        """The web viewer's address (``--view web``), else None."""
        return self._url

    def add(self, message: dict[str, Any]) -> None:
        """One committed episode: ``{"env", "task", "data"}`` (the store's rows)."""
        self.log.log(message["env"], message["data"], message["task"])
        self.episodes += 1

    def status(self, step: int, values: dict[str, float]) -> None:
        """Run-wide numbers at batch step ``step`` under ``run/`` (steps/s, hop latencies in ms)."""
        for name, value in values.items():
            self.log.scalar(f"run/{name}", step, value)

    def close(self) -> dict[str, Any]:
        """Flush the recording (a saved file is complete after this) and say what was logged."""
        self.rec.flush()
        if self.target.kind == "save":
            self.rec.disconnect()
        return {"view": self.target.kind, "path": str(self.target.path) if self.target.path else None,
                "url": self._url, "episodes_viewed": self.episodes}
