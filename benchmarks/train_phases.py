"""Where the wall time of `thalamus train captioner` goes: start-up, steady training, final evaluation.

    python benchmarks/train_phases.py --device cuda --workers 14 --steps 300 [--tree OLD] [--graph] --json out.json

Runs ``train_captioner`` of this tree (or of ``--tree``, an older commit's code made by ``git archive``)
as the CLI does, with a progress hook that stamps every step. ``train_s`` (what the CLI reports, and
what frames/s in BENCHMARKS.md was divided by until 2026-12-05) holds three parts, reported apart:
the start (workers forked, the model built, the first frames and the first step's kernels compiled), the
steady steps (the throughput a long run sees: the second half of the steps before the last) and the last
step, which runs the final evaluation.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--tree", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the code to run (default: this checkout)")
    parser.add_argument("--graph", action="store_true", help="replay the step as one CUDA graph (TrainConfig.graph)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    sys.path.insert(0, str(args.tree.resolve()))
    from agent.perception.train import TrainConfig, train_captioner

    stamps: list[float] = []
    began = time.perf_counter()
    cfg = TrainConfig(steps=args.steps, device=args.device, workers=args.workers, eval_every=0,
                      **({"graph": True} if args.graph else {}))  # (an older tree has no such field)
    metrics = train_captioner(cfg, None, lambda step, m: stamps.append(time.perf_counter()))
    per_step = cfg.streams * cfg.chunk
    tail = max(2, (args.steps - 1) // 2)  # the second half of the steps before the last one
    steady = (stamps[-2] - stamps[-2 - tail + 1]) / (tail - 1)
    out = {"tree": str(args.tree), "graph": args.graph, "steps": args.steps, "train_s": metrics["train_s"],
           "frames_per_s": metrics["frames"] / metrics["train_s"],
           "start_to_first_step_s": stamps[0] - began, "steady_step_ms": steady * 1e3,
           "steady_frames_per_s": per_step / steady, "last_step_with_eval_s": stamps[-1] - stamps[-2],
           "exact": metrics.get("exact")}
    print(json.dumps(out))
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
