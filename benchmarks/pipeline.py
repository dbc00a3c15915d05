"""Pipeline benchmark: the same agent through Ray actors and in one plain process, side by side.

    python benchmarks/pipeline.py                       # CartPole-v1, 20k steps, 8 envs
    python benchmarks/pipeline.py --env Reacher-v5 --steps 4000 --json out.json

Both runs build the same models and recorder (the in-process run calls the actor classes
directly); the table shows steps/s and per-hop latency p50/p99, and the ratio actors/in-process.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from agent.config import AgentConfig  # noqa: E402
from agent.runtime import Agent  # noqa: E402
from launch import ray_session  # noqa: E402


def run_once(cfg: AgentConfig, use_ray: bool, root: Path) -> dict:
    agent = Agent(cfg, root / ("actors" if use_ray else "inprocess"), use_ray=use_ray)
    try:
        return agent.run()
    finally:
        agent.shutdown()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--num-envs", type=int, default=8)
    p.add_argument("--device", default="cpu")
    p.add_argument("--json", type=Path, help="also write the results here")
    args = p.parse_args()
    cfg = replace(AgentConfig(), env_id=args.env, steps=args.steps, num_envs=args.num_envs, device=args.device)
    ray_session.connect(None)
    with tempfile.TemporaryDirectory() as tmp:
        base = run_once(cfg, False, Path(tmp))
        ours = run_once(cfg, True, Path(tmp))
    table = Table(title=f"pipeline: {args.env}, {args.steps:,} steps, {args.num_envs} envs "
                        f"({os.cpu_count()} cores, {platform.machine()})", title_justify="left")
    for col in ("metric", "in-process", "ray actors", "actors / in-process"):
        table.add_column(col, justify="right" if col != "metric" else "left")

    def row(name: str, a: float, b: float, fmt: str) -> None:
        ratio = b / a if a and not math.isnan(a) and not math.isnan(b) else float("nan")
        table.add_row(name, format(a, fmt), format(b, fmt), f"{ratio:.2f}×")

    row("steps/s", base["steps_per_s"], ours["steps_per_s"], ",.0f")
    for hop in ours["latency_ms"]:
        for q in ("p50_ms", "p99_ms"):
            row(f"{hop} {q[:3]} (ms)", base["latency_ms"][hop][q], ours["latency_ms"][hop][q], ".3f")
    Console().print(table)
    if args.json:
        args.json.write_text(json.dumps({"config": vars(args) | {"json": str(args.json)},
                                         "inprocess": base, "actors": ours}, default=str))


if __name__ == "__main__":
    main()
