"""Where a step of `thalamus train captioner` goes: the real training loop under torch.profiler.

    python -P benchmarks/train_profile.py --device cuda --workers 14 --out prof/     # on the GPU machine

Runs ``train_captioner`` as the CLI does (synthetic data, 32 streams × 32 frames a step) and profiles
``--active`` steps after ``--wait`` steps of warm-up: the ops by GPU time and by host time, how often
the host waited on the device (synchronisations and device-to-host copies), and the wall time of a
step against its GPU time. A step whose wall time is well above its GPU time is bound on the host:
kernel launches, waiting for frames, or a synchronisation. ``--out`` gets the tables (and with
``--trace`` a Chrome trace).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from torch.profiler import ProfilerActivity, profile, schedule

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.train import TrainConfig, train_captioner  # noqa: E402

WAITS = ("cudaStreamSynchronize", "cudaDeviceSynchronize", "cudaEventSynchronize", "cudaMemcpy", "aten::item",
         "aten::_local_scalar_dense")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--workers", type=int, default=14)
    parser.add_argument("--wait", type=int, default=20, help="steps before profiling (default: %(default)s)")
    parser.add_argument("--active", type=int, default=10, help="steps profiled (default: %(default)s)")
    parser.add_argument("--out", type=Path, default=Path("train-profile"))
    parser.add_argument("--trace", action="store_true", help="also write a Chrome trace (tens of MB)")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if args.device == "cuda" else [])
    stamps: list[float] = []
    prof = profile(activities=activities, schedule=schedule(wait=args.wait, warmup=2, active=args.active, repeat=1))

    def progress(step: int, _metrics: dict) -> None:
        stamps.append(time.perf_counter())
        prof.step()

    cfg = TrainConfig(steps=args.wait + 2 + args.active + 1, device=args.device, workers=args.workers, eval_every=0)
    with prof:
        train_captioner(cfg, None, progress)
    profiled = stamps[args.wait + 2: args.wait + 2 + args.active + 1]
    wall_ms = (profiled[-1] - profiled[0]) / (len(profiled) - 1) * 1e3
    averages = prof.key_averages()
    device_ms = sum(e.self_device_time_total for e in averages) / 1e3 / args.active
    waits = {e.key: {"calls": e.count / args.active, "host_ms": e.cpu_time_total / 1e3 / args.active}
             for e in averages if e.key.startswith(WAITS)}
    summary = {"device": args.device, "workers": args.workers, "step_wall_ms": wall_ms,
               "step_device_ms": device_ms, "per_step_waits": waits,
               "aten_calls_per_step": sum(e.count for e in averages if e.key.startswith("aten::")) / args.active}
    sort = "self_cuda_time_total" if args.device == "cuda" else "self_cpu_time_total"
    (args.out / "by-device-time.txt").write_text(averages.table(sort_by=sort, row_limit=40))
    (args.out / "by-host-time.txt").write_text(averages.table(sort_by="cpu_time_total", row_limit=40))
    (args.out / "summary.json").write_text(json.dumps(summary, indent=1))
    if args.trace:
        prof.export_chrome_trace(str(args.out / "trace.json"))
    print(json.dumps(summary, indent=1))
    print(averages.table(sort_by=sort, row_limit=15))


if __name__ == "__main__":
    main()
