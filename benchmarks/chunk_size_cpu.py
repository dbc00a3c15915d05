"""The PyTorch chunked gated delta rule on a CPU: the chunk length it now picks against the fixed 64 of
before, forward and forward + backward, at the shapes the project runs on a CPU (a caption thread
catching up on a few frames of 8 streams, a captioner training step of 32 streams × 32 frames, one
long stream), one thread, side by side in one process.

    python -P benchmarks/chunk_size_cpu.py --json out.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from kernels.gated_delta_rule.chunk_torch import chunk_gated_delta_rule_torch, chunk_size_for  # noqa: E402

SHAPES = [(8, 2, 4, 32), (8, 8, 4, 32), (32, 32, 4, 32), (8, 256, 4, 32), (1, 1024, 4, 32), (4, 256, 8, 64)]


def timed(fn, repeats: int) -> float:
    """Median seconds of ``repeats`` calls after two warm-ups."""
    fn(), fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    rows = []
    for B, T, H, K in SHAPES:
        q, k = (F.normalize(torch.randn(B, T, H, K, generator=gen), dim=-1).requires_grad_() for _ in range(2))
        v = torch.randn(B, T, H, K, generator=gen).requires_grad_()
        g = (-F.softplus(torch.randn(B, T, H, generator=gen))).requires_grad_()
        beta = torch.sigmoid(torch.randn(B, T, H, generator=gen)).requires_grad_()
        state = torch.zeros(B, H, K, K)
        chosen = chunk_size_for(B, T, H, K, q.device)
        row = {"shape": [B, T, H, K], "chunk": chosen}
        for chunk, name in ((64, "before"), (chosen, "now")):
            def forward() -> None:
                with torch.no_grad():
                    chunk_gated_delta_rule_torch(q, k, v, g, beta, K ** -0.5, state, chunk)

            def both() -> None:
                o, s = chunk_gated_delta_rule_torch(q, k, v, g, beta, K ** -0.5, state, chunk)
                (o.sum() + s.sum()).backward()

            row[f"{name}_fwd_ms"] = timed(forward, args.repeats) * 1e3
            row[f"{name}_fwdbwd_ms"] = timed(both, args.repeats) * 1e3
        rows.append(row)
        print(f"B×T×H×K {B}×{T}×{H}×{K}: chunk {chosen} against 64: forward {row['before_fwd_ms']:.2f} → "
              f"{row['now_fwd_ms']:.2f} ms ({row['before_fwd_ms'] / row['now_fwd_ms']:.1f}x), forward+backward "
              f"{row['before_fwdbwd_ms']:.2f} → {row['now_fwdbwd_ms']:.2f} ms "
              f"({row['before_fwdbwd_ms'] / row['now_fwdbwd_ms']:.1f}x)", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"threads": 1, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
