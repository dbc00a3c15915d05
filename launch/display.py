"""The live progress display (on stderr, so ``--json`` output stays clean) and the summary table."""

from __future__ import annotations

import math
import sys
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


def stdout_console() -> Console:
    """A console for reports; wide when piped, so paths and tables are not cut to 80 columns."""
    return Console(width=None if sys.stdout.isatty() else 160)


class RunDisplay:
    """A rich progress bar over steps (or episodes) with the live return and throughput."""

    def __init__(self, total: int, unit: str, enabled: bool = True, start_steps: int = 0) -> None:
        """``start_steps``: steps a resumed run already had, left out of the rate."""
        self.unit, self.start_steps = unit, start_steps
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} " + unit),
            TextColumn("{task.fields[rate]}"), TextColumn("{task.fields[ret]}"), TimeElapsedColumn(),
            TextColumn("[italic]{task.fields[caption]}"),
            console=Console(stderr=True), transient=True, disable=not enabled,
        )
        self.task = self.progress.add_task("run", total=total, rate="", ret="", caption="")

    def __enter__(self) -> "RunDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def update(self, p: dict[str, Any]) -> None:
        rate = (p["steps"] - self.start_steps) / p["elapsed_s"] if p.get("elapsed_s") else 0.0
        ret = p.get("mean_return_last20", float("nan"))
        success = p.get("success_rate_last20", float("nan"))
        shown = "" if math.isnan(ret) else f"return(20) {ret:.1f}"
        if not math.isnan(success):
            shown += f"  success(20) {success:.0%}"
        self.progress.update(
            self.task, description=p.get("task_name", "run"),
            completed=p["steps"] if self.unit == "steps" else p["episodes"],
            rate=f"{rate:,.0f} steps/s", ret=shown,
            caption=f"env 0: {p['caption']}" if p.get("caption") else "",
        )


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.3f}"


def _percent(x: float | None) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.0%}"


def _captions(s: dict[str, Any]) -> str:
    """Who captioned, and how far the captions (decoded off the acting path) trailed their frames."""
    if s.get("captioner") in (None, "off"):
        return "off"
    lag = s.get("caption_lag_steps")
    behind = "" if not lag or not lag["count"] else \
        f"; lag p50 {lag['p50']:.0f}, p99 {lag['p99']:.0f}, max {lag['max']:.0f} steps"
    skipped = s.get("captions_skipped", 0)
    read = "every step" if not skipped else \
        f"{1 - skipped / max(1, s['steps']):.0%} of steps' own frames (the rest skipped to keep up)"
    busy = "" if s.get("caption_idle_until") is None else \
        f"; from vector step {s['caption_idle_until']} at normal priority (other work kept the cores busy)"
    return f"{read}, by {s['captioner']}{behind}{busy}"


def summary_table(s: dict[str, Any]) -> Table:
    """The human-readable run summary."""
    t = Table(title=f"thalamus run — {s['env']}", show_header=False, title_justify="left")
    t.add_column(style="bold")
    t.add_column()
    ret = s["mean_return_last20"]
    rows = [
        ("episodes", f"{s['episodes']} finished ({s['episodes_recorded']} recorded)"),
        ("steps", f"{s['steps']:,} ({s['steps_recorded']:,} recorded)"),
        ("mean return, last 20", "n/a" if ret is None or math.isnan(ret) else f"{ret:.1f}"),
        *([("success rate, last 20", _percent(s["success_rate_last20"]))] if "success_rate_last20" in s else []),
        ("steps/s", f"{s['steps_per_s']:,.0f} over {s['elapsed_s']:.1f} s"),
        ("frames dropped", str(s["frames_dropped"])),
        *([("late steps", f"{s['late_steps']:,} missed the control rate's tick")] if "late_steps" in s else []),
        ("captions", _captions(s)),
        ("store", f"{s['store_bytes'] / 2**20:.2f} MiB in {s['run_dir']}"),
        ("transport", f"{s['transport']}, {s['restarts']} actor restart{'' if s['restarts'] == 1 else 's'}"),
    ]
    if s.get("resumed_from"):
        r = s["resumed_from"]
        models = f"models from {r['checkpoint']}" if r["checkpoint"] else "models from scratch (no checkpoint yet)"
        rows.append(("resumed", f"at {r['steps']:,} committed steps, {models}"))
    if s.get("tasks"):
        returns = ", ".join("n/a" if r is None else f"{r:.1f}" for r in s["task_returns"])
        done = f"{sum(c.startswith('task_') for c in s['checkpoints'])} of {len(s['task_names'])} done"
        rows.append(("tasks", f"{s['tasks']}: {done}, {s['steps_per_task']:,} steps each"))
        rows.append(("mean return per task", returns))
        if "task_success" in s:
            rows.append(("success rate per task", ", ".join(_percent(r) for r in s["task_success"])))
    for hop, lat in s["latency_ms"].items():
        rows.append((f"hop {hop}", f"p50 {_fmt(lat['p50_ms'])} ms  p99 {_fmt(lat['p99_ms'])} ms"))
    for name, value in rows:
        t.add_row(name, value)
    if s.get("run_dir") and "final.pt" in s.get("checkpoints", []):
        t.add_row("models", f"{s['run_dir']}/checkpoints/final.pt")
    if s.get("interrupted"):
        t.add_row("status", "interrupted (what was seen is committed)")
    return t
