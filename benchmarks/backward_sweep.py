"""The Triton backward's launch shapes (warps, prefetch stages per kernel) swept on a GPU.

    python benchmarks/backward_sweep.py --json sweep.json        # needs CUDA

At 1×4096×16×128×128 (bf16) every combination of (warps, stages) ∈ {4, 8} × {1, 2} for the three
backward kernels (`kernels/gated_delta_rule/chunk_triton_backward.py`) times the backward alone
(the forward's saved tensors made once), beside our forward with and without saving them; CUDA events,
median. The default `BackwardLaunch` is marked; pick the shipped one from here.
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch
import triton

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.kernels import FWDBWD_SHAPE, bench, inputs  # noqa: E402
from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd  # noqa: E402
from kernels.gated_delta_rule.chunk_triton_backward import BackwardLaunch, chunk_gated_delta_rule_bwd  # noqa: E402

SHAPES = [(4, 1), (8, 1), (4, 2), (8, 2)]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--json", type=Path, help="write every timing here")
    args = p.parse_args()
    assert torch.cuda.is_available(), "this benchmark needs a CUDA GPU"
    torch.backends.cuda.matmul.allow_tf32 = False
    q, k, v, g, beta, h0 = inputs(*FWDBWD_SHAPE)
    scale = FWDBWD_SHAPE[3] ** -0.5
    fwd = bench(lambda: chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True))
    fwd_save = bench(lambda: chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True, save=True))
    _, _, *saved = chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, True, save=True)
    do, dht = torch.randn_like(v), torch.randn_like(h0)
    print(f"{torch.cuda.get_device_name()}, triton {triton.__version__}, {FWDBWD_SHAPE} bf16: forward {fwd:.3f} ms, "
          f"saving for the backward {fwd_save:.3f} ms", flush=True)
    rows = []
    for dstate, dqkw, dwy in itertools.product(SHAPES, SHAPES, SHAPES):
        launch = BackwardLaunch(dstate, dqkw, dwy)
        try:
            ms = bench(lambda: chunk_gated_delta_rule_bwd(q, k, v, g, beta, scale, h0, tuple(saved), do, dht, launch))
        except triton.runtime.errors.OutOfResources as exc:
            print(f"{launch}: {str(exc)[:80]}")
            continue
        mark = " (shipped)" if launch == BackwardLaunch() else ""
        total = fwd_save + ms
        rows.append({"dstate": dstate, "dqkw": dqkw, "dwy": dwy, "bwd_ms": ms, "fwd_ms": fwd,
                     "fwd_save_ms": fwd_save, "fwd_bwd_over_fwd": total / fwd, "shipped": bool(mark)})
        print(f"{launch}: backward {ms:.3f} ms; forward (saving) + backward {total:.3f} ms = "
              f"{total / fwd:.2f}x the forward{mark}", flush=True)
    best = min(rows, key=lambda r: r["bwd_ms"])
    print(f"fastest: {best}")
    if args.json:
        args.json.write_text(json.dumps({"device": torch.cuda.get_device_name(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
