"""`thalamus bench pipeline`: how fast messages and steps move through the runtime, per transport.

    thalamus bench pipeline
    thalamus bench pipeline --json pipeline.json --address auto

Per-hop p50/p99 of a small message, a 64×64 frame and a 640×480 frame over each transport — ours
(named pipes between the actors' loop threads), a Ray Compiled Graph (shared-memory channels, busy-
polled), plain actor calls, `ray.util.queue` — and in-process; steps/s of the whole agent
(CartPole-v1, captions off) with 1, 4 and 8 envs; and camera-to-action latency with a 30 Hz camera
over ours, the compiled graph and plain actor calls.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import replace
from pathlib import Path

from launch.errors import UsageError


def add_parser(bsub: argparse._SubParsersAction) -> None:
    p = bsub.add_parser("pipeline", help="per-hop latency by transport, steps/s by envs, camera-to-action",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--hops", type=int, default=300, metavar="N",
                   help="messages timed per transport and payload (default: %(default)s)")
    p.add_argument("--steps", type=int, default=4000, metavar="N",
                   help="agent steps per env count (default: %(default)s)")
    p.add_argument("--camera-seconds", type=float, default=10.0, metavar="S",
                   help="seconds of 30 Hz camera (default: %(default)s)")
    p.add_argument("--address", metavar="ADDR", help="join a running Ray cluster (default: start a local one)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here (default: none)")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    if args.hops < 20 or args.steps < 100 or args.camera_seconds < 2:
        raise UsageError("--hops must be ≥ 20, --steps ≥ 100 and --camera-seconds ≥ 2")
    from rich.table import Table

    from agent.config import AgentConfig
    from agent.runtime import Agent
    from launch import ray_session
    from launch.bench.camera_loop import TRANSPORTS, camera_to_action
    from launch.bench.hops import measure_hops
    from launch.display import stdout_console

    console = stdout_console()
    ray_session.connect(args.address)
    console.print("hops ...")
    hops = measure_hops(args.hops)
    steps_per_s = {}
    for n in (1, 4, 8):
        console.print(f"agent with {n} env{'s' if n > 1 else ''} ...")
        cfg = replace(AgentConfig(), steps=args.steps, num_envs=n, captioner="off")
        with tempfile.TemporaryDirectory() as tmp:
            agent = Agent(cfg, Path(tmp) / "run", use_ray=True)
            try:
                steps_per_s[str(n)] = agent.run()["steps_per_s"]
            finally:
                agent.shutdown()
    console.print("camera to action at 30 Hz ...")
    camera = {name: camera_to_action(args.camera_seconds, transport=name) for name in TRANSPORTS}
    table = Table("hop", "p50 ms", "p99 ms", title="per hop (receiver decodes)", title_justify="left")
    for name, h in hops.items():
        table.add_row(name, f"{h['p50_ms']:.3f}", f"{h['p99_ms']:.3f}")
    console.print(table)
    for n, rate in steps_per_s.items():
        console.print(f"{n} env(s): {rate:,.0f} steps/s ({rate / steps_per_s['1']:.1f}× 1 env)")
    for name, c in camera.items():
        console.print(f"camera→action over {name}: p50 {c['p50_ms']:.1f} ms, p99 {c['p99_ms']:.1f} ms "
                      f"({c['frames']} frames, {c['dropped']} dropped)")
    if args.json:
        args.json.write_text(json.dumps({"hops": hops, "steps_per_s": steps_per_s,
                                         "camera_to_action_p99_ms": camera["ours"]["p99_ms"],
                                         "camera_to_action": camera}, indent=1))
    return 0
