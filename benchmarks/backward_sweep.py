"""The Triton backward's launch shapes (warps, prefetch stages per kernel) swept on a GPU.

    python benchmarks/backward_sweep.py --json sweep.json        # needs CUDA

At 1×4096×16×128×128, in bf16 and fp32, each of the three backward kernels
(`kernels/gated_delta_rule/chunk_triton_backward.py`) is tried at (warps, stages) ∈ {(4, 1), (8, 1),
(4, 2)} while the other two keep the shipped shape; the state pass at V blocks of 16 and 64; the
chunk-local part of dVn in a parallel kernel before the state pass (``local_dv``); and the 16-bit
build (bf16 operands, not widened to fp32; ``widen=False``) with all three kernels at 2 or 4 warps,
the shapes flash-linear-attention found right on Hopper. Each try runs in its own process (a launch
shape the compiler gets wrong can fault the GPU, which ends the process), checks its gradients
against the shipped backward's, and times the backward alone (CUDA events, median) beside our
forward with and without saving for it; the shipped, ``local_dv`` and 16-bit builds also by kernel
(torch.profiler).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.kernels import FWDBWD_SHAPE, bench, inputs, rel_rmse  # noqa: E402
from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd  # noqa: E402
from kernels.gated_delta_rule.chunk_triton_backward import BackwardLaunch, chunk_gated_delta_rule_bwd  # noqa: E402

SHAPES = [(4, 1), (8, 1), (4, 2)]
KERNELS = ("dstate", "dqkw", "dwy")
NARROW_SHAPES = [(2, 1), (4, 1)]
DSTATE_BLOCKS = [16, 64]  # the state pass's V block beside the shipped 32 at this shape (64 programs for 132 SMs)


def kernel_times(fn, calls: int = 20) -> dict[str, float]:
    """GPU time of each kernel ``fn`` launches, ms a call (torch.profiler): which part of the backward
    to work on (the three Triton kernels, and the dtype conversions of a widened build)."""
    from torch.profiler import ProfilerActivity, profile

    fn()
    torch.cuda.synchronize()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(calls):
            fn()
        torch.cuda.synchronize()
    times: dict[str, float] = {}
    for event in prof.key_averages():
        if event.self_device_time_total > 0:
            name = event.key if event.key.startswith("_") else event.key.split("<")[0][:60]
            times[name] = times.get(name, 0.0) + event.self_device_time_total / 1e3 / calls
    return dict(sorted(times.items(), key=lambda kv: -kv[1])[:8])


def time_one(dtype: torch.dtype, kernel: str | None, shape: tuple[int, int] | None) -> dict:
    """Time the backward with ``kernel`` launched at ``shape`` (None: the shipped launch; "narrow":
    every kernel at ``shape``, 16-bit operands)."""
    torch.backends.cuda.matmul.allow_tf32 = False
    q, k, v, g, beta, h0 = inputs(*FWDBWD_SHAPE, dtype=dtype)
    scale = FWDBWD_SHAPE[3] ** -0.5
    fwd = bench(lambda: chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True))
    fwd_save = bench(lambda: chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True, save=True))
    _, _, *saved = chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True, save=True)
    gen = torch.Generator(device="cuda").manual_seed(5)
    do = torch.randn(v.shape, device="cuda", generator=gen).to(v.dtype)
    dht = torch.randn(h0.shape, device="cuda", generator=gen)
    shipped = BackwardLaunch()
    if kernel in ("narrow", "narrow_local_dv"):
        launch = BackwardLaunch(shape, shape, shape, local_dv=kernel == "narrow_local_dv")
    elif kernel == "local_dv":
        launch = replace(shipped, local_dv=True)
    elif kernel == "dstate_block":  # shape (V block, 0)
        launch = replace(shipped, dstate_block=shape[0])
    else:
        launch = shipped if kernel is None else replace(shipped, **{kernel: shape})
    widen = not (kernel or "").startswith("narrow")
    ref = chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, h0, tuple(saved), do, dht, shipped)
    got = chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, h0, tuple(saved), do, dht, launch, widen)
    torch.cuda.synchronize()
    ms = bench(lambda: chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, h0, tuple(saved), do, dht, launch, widen))
    by_kernel = kernel_times(lambda: chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, h0, tuple(saved), do, dht,
                                                                launch, widen))
    return {"dtype": str(dtype).split(".")[-1], "kernel": kernel, "shape": shape, "launch": str(launch), "widen": widen,
            "kernels_ms": by_kernel, "bwd_ms": ms, "fwd_ms": fwd, "fwd_save_ms": fwd_save, "fwd_bwd_over_fwd": (fwd_save + ms) / fwd,
            "max_rel_rmse_vs_shipped": max(rel_rmse(r, x) for r, x in zip(ref, got) if r is not None)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write every timing here")
    p.add_argument("--one", nargs=4, metavar=("DTYPE", "KERNEL", "WARPS", "STAGES"), help=argparse.SUPPRESS)
    args = p.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    if args.one:
        dtype, kernel, warps, stages = args.one
        shape = None if kernel == "shipped" else (int(warps), int(stages))
        print(json.dumps(time_one(getattr(torch, dtype), None if kernel == "shipped" else kernel, shape)))
        return
    print(f"{torch.cuda.get_device_name()}, triton {triton.__version__}, {FWDBWD_SHAPE}", flush=True)
    rows = []
    tries = [(d, "shipped", (0, 0)) for d in ("bfloat16", "float32")]
    tries += [("bfloat16", "narrow", s) for s in NARROW_SHAPES]
    tries += [(d, "local_dv", (0, 0)) for d in ("bfloat16", "float32")] + [("bfloat16", "narrow_local_dv", NARROW_SHAPES[-1])]
    tries += [(d, kern, s) for d in ("bfloat16", "float32") for kern in KERNELS for s in SHAPES]
    tries += [(d, "dstate_block", (bv, 0)) for d in ("bfloat16", "float32") for bv in DSTATE_BLOCKS]
    for dtype, kernel, (warps, stages) in tries:
        cmd = [sys.executable, __file__, "--one", dtype, kernel, str(warps), str(stages)]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
        if run.returncode != 0:
            why = (run.stderr.strip().splitlines() or ["no output"])[-1][:120]
            print(f"{dtype} {kernel} {(warps, stages)}: failed: {why}", flush=True)
            rows.append({"dtype": dtype, "kernel": kernel, "shape": (warps, stages), "failed": why})
            continue
        row = json.loads(run.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{dtype}{' 16-bit build' if kernel.startswith('narrow') else ''} {row['launch']}: backward {row['bwd_ms']:.3f} ms; forward (saving) + backward "
              f"{row['fwd_save_ms'] + row['bwd_ms']:.3f} ms = {row['fwd_bwd_over_fwd']:.2f}x the forward "
              f"{row['fwd_ms']:.3f} ms; gradients vs shipped {row['max_rel_rmse_vs_shipped']:.1e}", flush=True)
        if kernel in ("shipped", "narrow", "local_dv", "narrow_local_dv"):
            print("    by kernel (ms): " + ", ".join(f"{n} {t:.3f}" for n, t in row["kernels_ms"].items()), flush=True)
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
