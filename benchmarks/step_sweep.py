"""The one-step gated delta rule kernel's launch shape (V block, warps) swept on a GPU, against the copy.

    python benchmarks/step_sweep.py --json sweep.json        # needs CUDA

For B ∈ {64, 4096, 20000} streams of 16 heads (128×128 state), every (BV, num_warps) pair times the raw
kernel (`kernels/gated_delta_rule/step_triton.py`) out of place with CUDA events (median); the bandwidth
is the bytes the step must move over its time, beside a device-to-device copy of the state's own size
and a 1 GiB one. The launch shape `gated_delta_rule_step_fwd` uses is marked; pick the shipped one from here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.kernels import bench, copy_bandwidth, inputs  # noqa: E402
from kernels.gated_delta_rule.step_triton import _step_kernel, launch_shape  # noqa: E402

BATCHES = [64, 4096, 20000]
H, K, V = 16, 128, 128


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write every timing here")
    args = p.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    big = copy_bandwidth()
    print(f"{torch.cuda.get_device_name()}, triton {triton.__version__}; 1 GiB copy: {big:,.0f} GB/s")
    rows = []
    for B in BATCHES:
        q, k, v, g, beta, h0 = inputs(B, 1, H, K, V)
        q, k, v, g, beta = (x[:, 0].contiguous() for x in (q, k, v, g, beta))
        src, dst = h0.view(-1), torch.empty_like(h0).view(-1)
        same = 2 * src.numel() * 4 / bench(lambda: dst.copy_(src)) / 1e6
        nbytes = B * H * K * V * 4 * 2 + B * H * (2 * K + 2 * V + 2) * 2
        o, ht = torch.empty_like(v), torch.empty_like(h0)
        shipped = launch_shape(K, V)
        for BV in (16, 32, 64, 128):
            for warps in (1, 2, 4, 8):
                def step(BV: int = BV, warps: int = warps) -> None:
                    _step_kernel[(B * H, triton.cdiv(V, BV))](q, k, v, g, beta, h0, o, ht, K ** -0.5, H, K, V,
                                                              triton.next_power_of_2(K), BV, num_warps=warps)
                ms = bench(step)
                gbs = nbytes / ms / 1e6
                mark = " (shipped)" if (BV, warps) == shipped else ""
                rows.append({"B": B, "BV": BV, "num_warps": warps, "us": ms * 1e3, "gbs": gbs,
                             "copy_same_size_gbs": same, "copy_1gib_gbs": big, "shipped": bool(mark)})
                print(f"B={B} BV={BV} warps={warps}: {ms * 1e3:.1f} us {gbs:,.0f} GB/s = {gbs / big:.0%} of the 1 GiB "
                      f"copy, {gbs / same:.0%} of a copy this size ({same:,.0f} GB/s){mark}", flush=True)
        del q, k, v, g, beta, h0, o, ht, src, dst
        torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
