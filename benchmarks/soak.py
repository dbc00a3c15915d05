"""Soak: `thalamus run`'s agent for a long time, sampling memory and latency every minute.

    .venv/bin/python benchmarks/soak.py --minutes 30 --json soak.json --png soak.png

Every minute: the resident memory (RSS) of the driver and of every Ray worker process, steps/s over
the minute, and the policy→env hop's p50/p99 over the minute. At the end it compares minute N with
minute 5 (RSS and p99 each within 10% is the bar) and plots both against time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from envs.headless import configure; configure()  # noqa: E402, E702  headless rendering, triton first

import ray  # noqa: E402

from agent.config import AgentConfig  # noqa: E402
from agent.runtime import Agent  # noqa: E402
from launch import ray_session  # noqa: E402


def _rss_kb(pid: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cluster_rss_mb() -> float:
    """RSS of this process and of every Ray worker process on the machine (``ray::`` titles), in MB
    (read from /proc: Linux only)."""
    total = _rss_kb("self")
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if (proc / "cmdline").read_bytes().startswith(b"ray::"):
                total += _rss_kb(proc.name)
        except OSError:  # the process ended meanwhile
            continue
    return total / 1024


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=30)
    p.add_argument("--env", default="CartPole-v1")
    p.add_argument("--json", type=Path)
    p.add_argument("--png", type=Path)
    args = p.parse_args()
    ray_session.connect(None)
    cfg = replace(AgentConfig(), env_id=args.env, steps=10**10)
    rows: list[dict] = []
    started = time.monotonic()
    last = {"t": started, "steps": 0}

    def sample(progress: dict) -> None:
        now = time.monotonic()
        if now - last["t"] < 60:
            return
        recent = ray.get(agent.env.progress.remote(now - last["t"]))
        hop = recent["hop_policy_env"]
        rows.append({"minute": round((now - started) / 60, 2), "rss_mb": cluster_rss_mb(),
                     "steps_per_s": (recent["steps"] - last["steps"]) / (now - last["t"]),
                     "hop_p50_ms": hop["p50_ms"], "hop_p99_ms": hop["p99_ms"]})
        print(json.dumps(rows[-1]), flush=True)
        last.update(t=now, steps=recent["steps"])
        if now - started >= args.minutes * 60:
            raise KeyboardInterrupt  # the agent stops stepping and commits what it saw

    with tempfile.TemporaryDirectory() as tmp:
        agent = Agent(cfg, Path(tmp) / "soak", use_ray=True)
        try:
            summary = agent.run(on_progress=sample, progress_every_s=5.0)
        finally:
            agent.shutdown()
    five = next((r for r in rows if r["minute"] >= 5), rows[0])
    end = rows[-1]
    verdict = {"rss_ratio": end["rss_mb"] / five["rss_mb"], "p99_ratio": end["hop_p99_ms"] / five["hop_p99_ms"],
               "steps": summary["steps"], "transport": summary["transport"]}
    print(json.dumps(verdict))
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, **verdict}, indent=1))
    if args.png:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (a, b) = plt.subplots(2, 1, figsize=(7, 6), sharex=True)
        minutes = [r["minute"] for r in rows]
        a.plot(minutes, [r["rss_mb"] for r in rows])
        a.set_ylabel("RSS, driver + Ray workers (MB)")
        b.plot(minutes, [r["hop_p99_ms"] for r in rows], label="p99")
        b.plot(minutes, [r["hop_p50_ms"] for r in rows], label="p50")
        b.set_ylabel("policy→env hop (ms)")
        b.set_xlabel("minute")
        b.legend()
        fig.tight_layout()
        fig.savefig(args.png)


if __name__ == "__main__":
    main()
