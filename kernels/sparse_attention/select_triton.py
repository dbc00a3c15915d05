"""The hybrid top-k ∪ top-p block choice of ``mask.select_blocks`` in one Triton kernel, from the pooled
scores: softmax, choice and the ascending table of kept blocks, one program a row, nothing in between
written to memory (the PyTorch reference sorts and gathers through a dozen launches).

A row's kept blocks are those whose priority (mass, plus 2 for a local block) is at or above a
threshold: the highest one whose blocks hold ``top_p``, lowered to keep the local blocks (at least
one), raised to keep at most ``top_k`` besides them. The two highest-such thresholds are found by
bisection over the priorities' bit patterns (non-negative floats order as their int32 bits), 31
steps each. Blocks tied at the threshold are kept in index order up to the cap.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

MAX_BLOCKS = 16_384  # key blocks a row may have (the row lives in one program's registers)
_INF_BITS: tl.constexpr = tl.constexpr(0x7F800000)  # the bits of +inf: above every priority


@triton.jit
def _largest_threshold(bits, weight, target, top):
    """The largest t in [0, top] with Σ weight[bits ≥ t] ≥ target (0 if none), by bisection."""
    lo = tl.zeros([], dtype=tl.int32)
    hi = top
    for _ in range(31):
        mid = lo + (hi - lo + 1) // 2
        ok = tl.sum(tl.where(bits >= mid, weight, 0.0), axis=0) >= target
        lo = tl.where(ok, mid, lo)
        hi = tl.where(ok, hi, mid - 1)
    return lo


@triton.jit
def _select_kernel(scores, lut, counts, NQ, NK, WIDTH, s_row, top_k, top_p, local,
                   CAUSAL: tl.constexpr, BNK: tl.constexpr, BW: tl.constexpr):
    row = tl.program_id(0)
    i_q = row % NQ
    offs = tl.arange(0, BNK)
    inside = offs < NK
    visible = inside & (offs <= i_q) if CAUSAL else inside
    s = tl.load(scores + row.to(tl.int64) * s_row + offs, mask=visible, other=float("-inf"))
    e = tl.where(visible, tl.exp(s - tl.max(s, axis=0)), 0.0)
    p = e / tl.sum(e, axis=0)
    newest = i_q if CAUSAL else NK - 1
    near = inside & (offs <= newest) & (offs > newest - local)
    n_local = tl.sum(near.to(tl.int32), axis=0)
    bits = tl.where(inside, (p + 2.0 * near.to(tl.float32)).to(tl.int32, bitcast=True), -1)
    top = tl.max(bits, axis=0)
    # at least the local blocks (all above every other), or the heaviest one; as many as hold top_p
    t_floor = tl.where(n_local > 0, tl.min(tl.where(near, bits, _INF_BITS), axis=0), top)
    thr = tl.minimum(_largest_threshold(bits, p, top_p, top), t_floor)
    # at most top_k besides the local ones: no lower than the cap-th highest priority
    cap = n_local + top_k
    thr = tl.maximum(thr, _largest_threshold(bits, tl.where(inside, 1.0, 0.0), cap.to(tl.float32), top))
    keep = inside & (bits >= thr) & ((p > 0) | near)
    above = keep & (bits > thr)
    tied = keep & (bits == thr)  # kept in index order while the cap allows
    room = cap - tl.sum(above.to(tl.int32), axis=0)
    keep = above | (tied & (tl.cumsum(tied.to(tl.int32), axis=0) <= room))
    count = tl.sum(keep.to(tl.int32), axis=0)
    out = lut + row.to(tl.int64) * WIDTH
    tl.store(out + tl.cumsum(keep.to(tl.int32), axis=0) - 1, offs, mask=keep)
    last = tl.max(tl.where(keep, offs, -1), axis=0)
    slots = tl.arange(0, BW)
    tl.store(out + slots, tl.zeros([BW], dtype=tl.int32) + last, mask=(slots >= count) & (slots < WIDTH))
    tl.store(counts + row, count)


def select_blocks_triton(scores: torch.Tensor, top_k: int, top_p: float, causal: bool = False,
                         local: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The pooled block scores ``[..., nq, nk]`` (scaled, before the softmax) → ``lut`` and ``counts`` as
    ``mask.select_blocks`` gives them for ``block_probs`` of the same scores (the ``local`` newest blocks of
    ``mask.local_blocks`` kept besides); rows with more than ``MAX_BLOCKS`` blocks are refused."""
    if top_k < 1 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_k must be ≥ 1 and top_p in (0, 1], got top_k={top_k}, top_p={top_p}")
    nq, nk = scores.shape[-2:]
    if nk > MAX_BLOCKS:
        raise ValueError(f"at most {MAX_BLOCKS} key blocks a row, got {nk}: use mask.select_blocks")
    if causal and nq != nk:
        raise ValueError(f"causal selection needs as many query blocks as key blocks, got {nq} and {nk}")
    rows = scores.reshape(-1, nk).float().contiguous()
    n_local = min(local, nq if causal else nk)
    width = min(top_k + n_local, nk)
    lut = torch.empty(rows.shape[0], width, dtype=torch.int32, device=scores.device)
    counts = torch.empty(rows.shape[0], dtype=torch.int32, device=scores.device)
    bnk = max(16, triton.next_power_of_2(nk))
    _select_kernel[(rows.shape[0],)](rows, lut, counts, nq, nk, width, rows.stride(0), top_k, float(top_p), local,
                                     CAUSAL=causal, BNK=bnk, BW=max(16, triton.next_power_of_2(width)),
                                     num_warps=4 if bnk <= 2048 else 8)
    return lut.view(*scores.shape[:-1], width), counts.view(scores.shape[:-1])
