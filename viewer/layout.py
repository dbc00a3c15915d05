"""The viewer's layout (a Rerun blueprint): what a person watching a run wants side by side.

Top: every env's camera in a grid (``env0/camera`` first, top left), and the captions and task
boundaries as a log. Bottom: rewards and returns, and the run's own numbers (throughput, latency,
memories). The side panels start collapsed, so the pictures get the room.
"""

from __future__ import annotations

from typing import Any

from viewer.target import require_rerun


def run_layout(envs: int, prefix: str = "env") -> Any:
    """The blueprint for a run of ``envs`` envs logged under ``{prefix}{i}/``."""
    require_rerun()
    import rerun.blueprint as rrb

    cameras = [rrb.Spatial2DView(origin=f"/{prefix}{i}/camera", name=f"{prefix} {i}") for i in range(envs)]
    words = rrb.TextLogView(origin="/", name="captions and tasks")  # every text log: captions, task lines
    rewards = rrb.TimeSeriesView(origin="/", contents=[f"/{prefix}{i}/{key}" for i in range(envs)
                                                       for key in ("reward", "return", "success")],
                                 name="reward, return, success")
    run = rrb.TimeSeriesView(origin="/", contents=["/run/**", "/memory/**"], name="run")
    return rrb.Blueprint(
        rrb.Vertical(rrb.Horizontal(rrb.Grid(*cameras), words, column_shares=[3, 2]),
                     rrb.Horizontal(rewards, run), row_shares=[3, 2]),
        collapse_panels=True)
