"""Triton block-sparse attention: each query block visits only its kept key blocks (a table of block
indices), FlashAttention-style (online softmax, fp32 accumulation), forward and backward.

- ``_forward_kernel``, one program per (query block, batch·head): o and the rows' log-sum-exp.
- ``_backward_kernel``, the same grid: recomputes the probabilities from the log-sum-exp, writes dq,
  and adds each visited key block's dk and dv into fp32 buffers atomically (key blocks are shared
  between query blocks).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl


@triton.jit
def _forward_kernel(q, k, v, lut, counts, o, lse, scale, Tq, Tk, NQ, H, sq_b, sq_h, sq_t, sk_b, sk_h, sk_t,
                    sv_b, sv_h, sv_t, D: tl.constexpr, DV: tl.constexpr,
                    BLOCK: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr, WIDTH: tl.constexpr,
                    CAUSAL: tl.constexpr, IEEE: tl.constexpr):
    i_q, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    q += i_b * sq_b + i_h * sq_h
    k += i_b * sk_b + i_h * sk_h
    v += i_b * sv_b + i_h * sv_h
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    rows = i_q * BLOCK + tl.arange(0, BLOCK)
    m_q = rows < Tq
    o_d, o_dv = tl.arange(0, BD), tl.arange(0, BDV)
    b_q = tl.load(q + rows[:, None] * sq_t + o_d[None, :], mask=m_q[:, None] & (o_d < D)[None, :], other=0.0)
    b_m = tl.full([BLOCK], float("-inf"), dtype=tl.float32)
    b_l = tl.zeros([BLOCK], dtype=tl.float32)
    b_acc = tl.zeros([BLOCK, BDV], dtype=tl.float32)
    entry = i_bh * NQ + i_q
    for j in range(0, tl.load(counts + entry)):
        cols = tl.load(lut + entry * WIDTH + j) * BLOCK + tl.arange(0, BLOCK)
        m_k = cols < Tk
        b_k = tl.load(k + cols[:, None] * sk_t + o_d[None, :], mask=m_k[:, None] & (o_d < D)[None, :], other=0.0)
        b_v = tl.load(v + cols[:, None] * sv_t + o_dv[None, :], mask=m_k[:, None] & (o_dv < DV)[None, :], other=0.0)
        valid = m_k[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None])
        b_s = tl.where(valid, tl.dot(b_q, tl.trans(b_k), input_precision=prec) * scale, float("-inf"))
        b_new = tl.maximum(b_m, tl.max(b_s, axis=1))
        b_safe = tl.where(b_new == float("-inf"), 0.0, b_new)  # a row with nothing visible yet
        b_p = tl.exp(b_s - b_safe[:, None])
        b_alpha = tl.exp(b_m - b_safe)
        b_l = b_l * b_alpha + tl.sum(b_p, axis=1)
        b_acc = b_acc * b_alpha[:, None] + tl.dot(b_p.to(b_v.dtype), b_v, input_precision=prec)
        b_m = b_new
    b_l = tl.where(b_l > 0, b_l, 1.0)
    tl.store(o + (i_bh * Tq + rows[:, None]) * DV + o_dv[None, :], (b_acc / b_l[:, None]).to(o.dtype.element_ty),
             mask=m_q[:, None] & (o_dv < DV)[None, :])
    tl.store(lse + i_bh * Tq + rows, b_m + tl.log(b_l), mask=m_q)


@triton.jit
def _backward_kernel(q, k, v, do, lse, delta, lut, counts, dq, dk, dv, scale, Tq, Tk, NQ, H, sq_b, sq_h, sq_t,
                     sk_b, sk_h, sk_t, sv_b, sv_h, sv_t, D: tl.constexpr,
                     DV: tl.constexpr, BLOCK: tl.constexpr, BD: tl.constexpr, BDV: tl.constexpr,
                     WIDTH: tl.constexpr, CAUSAL: tl.constexpr, IEEE: tl.constexpr):
    i_q, i_bh = tl.program_id(0), tl.program_id(1)
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    rows = i_q * BLOCK + tl.arange(0, BLOCK)
    m_q = rows < Tq
    o_d, o_dv = tl.arange(0, BD), tl.arange(0, BDV)
    m_qd, m_qv = m_q[:, None] & (o_d < D)[None, :], m_q[:, None] & (o_dv < DV)[None, :]
    i_b, i_h = i_bh // H, i_bh % H
    b_q = tl.load(q + i_b * sq_b + i_h * sq_h + rows[:, None] * sq_t + o_d[None, :], mask=m_qd, other=0.0)
    b_do = tl.load(do + (i_bh * Tq + rows[:, None]) * DV + o_dv[None, :], mask=m_qv, other=0.0)
    b_lse = tl.load(lse + i_bh * Tq + rows, mask=m_q, other=0.0)
    b_delta = tl.load(delta + i_bh * Tq + rows, mask=m_q, other=0.0)
    b_dq = tl.zeros([BLOCK, BD], dtype=tl.float32)
    entry = i_bh * NQ + i_q
    for j in range(0, tl.load(counts + entry)):
        cols = tl.load(lut + entry * WIDTH + j) * BLOCK + tl.arange(0, BLOCK)
        m_k = cols < Tk
        m_kd, m_kv = m_k[:, None] & (o_d < D)[None, :], m_k[:, None] & (o_dv < DV)[None, :]
        b_k = tl.load(k + i_b * sk_b + i_h * sk_h + cols[:, None] * sk_t + o_d[None, :], mask=m_kd, other=0.0)
        b_v = tl.load(v + i_b * sv_b + i_h * sv_h + cols[:, None] * sv_t + o_dv[None, :], mask=m_kv, other=0.0)
        valid = m_q[:, None] & m_k[None, :]
        if CAUSAL:
            valid = valid & (cols[None, :] <= rows[:, None])
        b_s = tl.dot(b_q, tl.trans(b_k), input_precision=prec) * scale
        b_p = tl.where(valid, tl.exp(b_s - b_lse[:, None]), 0.0)
        b_dp = tl.dot(b_do, tl.trans(b_v), input_precision=prec)
        b_ds = b_p * (b_dp - b_delta[:, None])
        b_dq += tl.dot(b_ds.to(b_k.dtype), b_k, input_precision=prec)
        tl.atomic_add(dv + (i_bh * Tk + cols[:, None]) * DV + o_dv[None, :],
                      tl.dot(tl.trans(b_p.to(b_do.dtype)), b_do, input_precision=prec), mask=m_kv)
        tl.atomic_add(dk + (i_bh * Tk + cols[:, None]) * D + o_d[None, :],
                      tl.dot(tl.trans(b_ds.to(b_q.dtype)), b_q, input_precision=prec) * scale, mask=m_kd)
    tl.store(dq + (i_bh * Tq + rows[:, None]) * D + o_d[None, :], (b_dq * scale).to(dq.dtype.element_ty), mask=m_qd)


def _strides(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> tuple[int, ...]:
    """Batch, head and time strides of q, k, v (their last dimension contiguous): a view into a
    preallocated cache is read where it lies."""
    return (q.shape[1], *q.stride()[:3], *k.stride()[:3], *v.stride()[:3])


def _shape(q: torch.Tensor, v: torch.Tensor, block: int) -> dict:
    return dict(D=q.shape[-1], DV=v.shape[-1], BLOCK=block, BD=max(16, triton.next_power_of_2(q.shape[-1])),
                BDV=max(16, triton.next_power_of_2(v.shape[-1])),
                IEEE=q.dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32)


def sparse_attention_fwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lut: torch.Tensor, counts: torch.Tensor,
                         block: int, causal: bool, scale: float, launch: tuple[int, int | None] = (4, None),
                         ) -> tuple[torch.Tensor, torch.Tensor]:
    """q ``[B, H, Tq, D]``, k ``[B, H, Tk, D]``, v ``[B, H, Tk, Dv]`` (each with its last dimension
    contiguous), the kept key blocks (``mask.select_blocks``) → o ``[B, H, Tq, Dv]`` and the rows'
    log-sum-exp (fp32). ``launch``: (warps, prefetch stages; None: Triton's default), for
    benchmarks/kernels.py to sweep."""
    B, H, Tq, _ = q.shape
    NQ = triton.cdiv(Tq, block)
    o = torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
    lse = torch.empty(B, H, Tq, dtype=torch.float32, device=q.device)
    stages = {} if launch[1] is None else {"num_stages": launch[1]}
    _forward_kernel[(NQ, B * H)](q, k, v, lut, counts, o, lse, scale, Tq, k.shape[2], NQ, *_strides(q, k, v),
                                 WIDTH=lut.shape[-1], CAUSAL=causal, **_shape(q, v, block), num_warps=launch[0],
                                 **stages)
    return o, lse


def sparse_attention_bwd(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, o: torch.Tensor, lse: torch.Tensor,
                         do: torch.Tensor, lut: torch.Tensor, counts: torch.Tensor, block: int, causal: bool,
                         scale: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """dq, dk, dv (in q's, k's and v's dtypes) of the forward's o given ``do``."""
    B, H, Tq, _ = q.shape
    NQ = triton.cdiv(Tq, block)
    do = do.contiguous()
    delta = (do.float() * o.float()).sum(-1)  # rowsum(dO ⊙ O) = Σ_j P_ij dP_ij
    dq = torch.empty(q.shape, dtype=q.dtype, device=q.device)
    dk = torch.zeros(k.shape, dtype=torch.float32, device=k.device)
    dv = torch.zeros(v.shape, dtype=torch.float32, device=v.device)
    _backward_kernel[(NQ, B * H)](q, k, v, do, lse, delta, lut, counts, dq, dk, dv, scale, Tq, k.shape[2], NQ,
                                  *_strides(q, k, v), WIDTH=lut.shape[-1], CAUSAL=causal, **_shape(q, v, block), num_warps=4)
    return dq, dk.to(k.dtype), dv.to(v.dtype)
