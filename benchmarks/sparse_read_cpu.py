"""One streaming step's sparse read on the CPU, in parts, beside dense attention.

    python -P benchmarks/sparse_read_cpu.py

What the sparse softmax captioner does a layer a frame (`SoftmaxBlock` with `SparseRead()`): one query
over a cache of L keys (the captioner's 4 heads of 32), keeping the newest 64-frame block and those
holding 90% of the block-mean attention, at most 16 more. Batch 1, one thread, mean over 300 calls.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from kernels import key_blocks, sparse_attention  # noqa: E402
from kernels.sparse_attention.gather_torch import block_sparse_attention_gather  # noqa: E402
from kernels.sparse_attention.mask import pool_blocks  # noqa: E402

H, K, BLOCK, TOP_K, TOP_P, LOCAL = 4, 32, 64, 16, 0.9, 1


def mean_us(fn, n: int = 300) -> float:
    fn()
    start = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    for keys in (1_000, 10_000, 100_000):
        q, k, v = (torch.randn(1, H, n, K, generator=gen) for n in (1, keys, keys))
        means = pool_blocks(k, BLOCK)
        lut, counts = key_blocks(q, k, TOP_K, TOP_P, BLOCK, key_means=means, local=LOCAL)
        t = {"dense sdpa": mean_us(lambda: F.scaled_dot_product_attention(q, k, v)),
             "sparse read": mean_us(lambda: sparse_attention(q, k, v, TOP_K, TOP_P, BLOCK, key_means=means, local=LOCAL)),
             "  choosing blocks": mean_us(lambda: key_blocks(q, k, TOP_K, TOP_P, BLOCK, key_means=means, local=LOCAL)),
             "  attention over them": mean_us(lambda: block_sparse_attention_gather(q, k, v, lut, counts, BLOCK, False,
                                                                                    K ** -0.5))}
        print(f"{keys:,} keys, {counts.float().mean():.0f} of {means.shape[2]} blocks kept: "
              + ", ".join(f"{name.strip()} {us:,.0f} µs" for name, us in t.items()))


if __name__ == "__main__":
    main()
