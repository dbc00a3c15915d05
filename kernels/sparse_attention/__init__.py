"""Sparse attention with hybrid top-k ∪ top-p block masks (SpargeAttention2's masking), one entry point:

    >>> o = sparse_attention(q, k, v, top_k=16, top_p=0.9, block=64)      # q, k, v [B, H, T, D]

Each query block keeps the key blocks that hold probability mass ``top_p`` of its mean-pooled scores,
at least one and at most ``top_k`` (``mask.py``; on CUDA in one Triton kernel, ``select_triton.py``),
and attends to their keys only. Backends: ``"torch"`` (the kept blocks gathered, ``gather_torch.py``),
``"triton"`` (``attention_triton.py``, block-sparse, forward and backward) and ``"auto"``: Triton for
CUDA tensors, else torch; both are checked against dense attention restricted to the same blocks
(``reference.py``). Gradients flow through the attention over the kept blocks; the choice of blocks
is not differentiated. A caller that keeps its keys' block means (a growing cache) passes them as
``key_means`` and the keys are then read only where kept.
"""

from __future__ import annotations

import torch

from kernels.sparse_attention.gather_torch import block_sparse_attention_gather
from kernels.sparse_attention.mask import (block_mask, block_probs, block_scores, local_blocks, pool_blocks,
                                           select_blocks)
from kernels.sparse_attention.reference import block_sparse_attention_reference


def key_blocks(q: torch.Tensor, k: torch.Tensor, top_k: int, top_p: float, block: int = 64, causal: bool = False,
               scale: float | None = None, key_means: torch.Tensor | None = None,
               local: int = 0, backend: str = "auto") -> tuple[torch.Tensor, torch.Tensor]:
    """The kept key blocks of each query block: ``lut`` ``[B, H, nq, width]`` (ascending) and ``counts``
    ``[B, H, nq]``, both int32 (``counts.float().mean() / nk`` is the density). ``key_means``
    ``[B, H, nk, D]``: the keys' block means, if the caller keeps them (else they are pooled from k).
    ``local``: the newest blocks kept besides (``mask.local_blocks``: a stream's recent past).
    ``backend``: the choice in one Triton kernel (``select_triton.py``; "auto": on CUDA, for rows of
    up to ``MAX_BLOCKS`` key blocks) or the PyTorch reference (``mask.select_blocks``)."""
    if backend not in ("auto", "torch", "triton"):
        raise ValueError(f"backend must be auto, torch or triton, got {backend!r}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    with torch.no_grad():
        means = pool_blocks(k, block) if key_means is None else key_means
        q_means = pool_blocks(q, block)
        if backend == "triton" or (backend == "auto" and q.is_cuda):
            from kernels.sparse_attention.select_triton import MAX_BLOCKS, select_blocks_triton

            if backend == "triton" or means.shape[-2] <= MAX_BLOCKS:
                return select_blocks_triton(block_scores(q_means, means, scale), top_k, top_p, causal, local)
        probs = block_probs(q_means, means, causal, scale)
        near = local_blocks(*probs.shape[-2:], local, causal, q.device) if local else None
        return select_blocks(probs, top_k, top_p, near)


class _TritonSparse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, lut, counts, block, causal, scale):  # type: ignore[override]
        from kernels.sparse_attention.attention_triton import sparse_attention_fwd

        o, lse = sparse_attention_fwd(q, k, v, lut, counts, block, causal, scale)
        ctx.save_for_backward(q, k, v, o, lse, lut, counts)
        ctx.block, ctx.causal, ctx.scale = block, causal, scale
        return o

    @staticmethod
    def backward(ctx, do):  # type: ignore[override]
        from kernels.sparse_attention.attention_triton import sparse_attention_bwd

        q, k, v, o, lse, lut, counts = ctx.saved_tensors
        dq, dk, dv = sparse_attention_bwd(q, k, v, o, lse, do, lut, counts, ctx.block, ctx.causal, ctx.scale)
        return dq, dk, dv, None, None, None, None, None


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, block: int, causal: bool) -> None:
    if q.dim() != 4 or k.dim() != 4 or v.dim() != 4:
        raise ValueError(f"q, k, v must be [B, H, T, D], got {tuple(q.shape)}, {tuple(k.shape)}, {tuple(v.shape)}")
    if k.shape[:2] != q.shape[:2] or k.shape[-1] != q.shape[-1] or v.shape[:3] != k.shape[:3]:
        raise ValueError(f"k must be [B, H, Tk, D] with q's B, H, D and v [B, H, Tk, Dv], got q {tuple(q.shape)}, "
                         f"k {tuple(k.shape)}, v {tuple(v.shape)}")
    if block < 16 or block & (block - 1):
        raise ValueError(f"block must be a power of two ≥ 16, got {block}")
    if causal and q.shape[2] != k.shape[2]:
        raise ValueError(f"causal attention needs as many queries as keys, got {q.shape[2]} and {k.shape[2]}")


def sparse_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, top_k: int, top_p: float, block: int = 64,
                     causal: bool = False, scale: float | None = None, backend: str = "auto",
                     key_means: torch.Tensor | None = None, local: int = 0) -> torch.Tensor:
    """Softmax attention of q ``[B, H, Tq, D]`` over the keys ``[B, H, Tk, D]`` (values ``[B, H, Tk, Dv]``)
    of each query block's kept key blocks (:func:`key_blocks`) → ``[B, H, Tq, Dv]`` in q's dtype. Queries
    of another dtype than the keys (a bf16 step under autocast over an fp32 cache) are computed in the
    keys' dtype: casting the few queries costs nothing, casting the cache would copy it every step."""
    _check(q, k, v, block, causal)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    out_dtype, q = q.dtype, q.to(k.dtype)
    lut, counts = key_blocks(q, k, top_k, top_p, block, causal, scale, key_means, local, backend)
    if backend == "torch" or (backend == "auto" and not q.is_cuda):
        return block_sparse_attention_gather(q, k, v, lut, counts, block, causal, scale).to(out_dtype)
    rows = [x if x.stride(-1) == 1 else x.contiguous() for x in (q, k, v)]  # views are read in place
    return _TritonSparse.apply(*rows, lut, counts, block, causal, scale).to(out_dtype)


__all__ = ["block_mask", "block_sparse_attention_gather", "block_sparse_attention_reference", "key_blocks",
           "pool_blocks", "sparse_attention"]
