"""Triton backward of the chunked gated delta rule: the gradients of ``chunk_triton.py``'s forward.

When gradients are wanted, the forward keeps W, γ, ``T = (I + A)⁻¹``, the state at each chunk's
start (h) and the new values ``Vn = U − W S`` (writing h costs far less than a second state pass to
recompute it). From those, three kernels:

1. ``_dstate_kernel``, one program per (V block, batch·head), chunks in reverse: carries dS, the
   gradient of the state at a chunk's end, saves it (dh) and writes ``dVn = Pᵀ dO + K_d dS``, where
   ``P = scale·(QKᵀ ⊙ M)`` and ``K_d = K ⊙ exp(γ_last − γ)``; dS then steps back through the chunk:
   ``dS ← exp(γ_last) dS + (Γ·scale·Q)ᵀ dO − Wᵀ dVn`` (what is left at the start is dh0). With
   ``BackwardLaunch.local_dv``, ``_dvn_local_kernel`` writes every chunk's ``Pᵀ dO`` first, in
   parallel, and the sequential pass only adds ``K_d dS`` (two of its five products leave the chain);
2. ``_dqkw_kernel``, one program per (chunk, batch·head): dq, and the parts of dk and dγ that come
   from the chunk's attention and state;
3. ``_dwy_kernel``, the same grid: ``dW = −dVn Sᵀ``, then back through the WY form
   (``dA = −(dK_b Wᵀ + dV_b Uᵀ)`` below the diagonal, ``dK_b = Tᵀ dW``, ``dV_b = Tᵀ dVn``) to dk, dv,
   dβ, and dg, the reverse cumulative sum of the chunk's dγ.

The formulas are derived from ``chunk_torch.py`` line by line; tests check them against autograd of
the fp32 recurrent reference.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from kernels.gated_delta_rule.chunk_triton import state_v_block


@dataclass(frozen=True)
class BackwardLaunch:
    """(warps, prefetch stages) of each backward kernel, and the state pass's V block (0: as the forward
    chooses, :func:`state_v_block`), swept by benchmarks/backward_sweep.py."""

    dstate: tuple[int, int] = (8, 1)
    dqkw: tuple[int, int] = (8, 1)
    dwy: tuple[int, int] = (8, 1)
    dstate_block: int = 0
    local_dv: bool = False  # the chunk-local part of dVn (Pᵀ dO) in a parallel kernel first (_dvn_local_kernel)


@triton.jit
def _dvn_local_kernel(q, k, gcum, do, dvn, scale, T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                      BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    """``Pᵀ dO`` of each chunk into dvn, all chunks at once: the part of dVn that does not depend on
    the state's gradient, so the sequential state pass only adds ``K_d dS`` to it."""
    i_c, i_bh, i_s, m_t, row = _chunk_rows(T, H, BT)
    i_v = tl.program_id(2)
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_tk = m_t[:, None] & (o_k < K)[None, :]
    m_tv = m_t[:, None] & (o_v < V)[None, :]
    dt = q.dtype.element_ty
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    last = tl.minimum(T, i_c * BT + BT) - 1
    g_last = tl.load(gcum + ((i_bh // H) * T + last) * H + i_bh % H)
    b_gc = tl.where(m_t, tl.load(gcum + row, mask=m_t, other=0.0), g_last)
    b_q = tl.load(q + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    b_k = tl.load(k + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    b_do = tl.load(do + row[:, None] * V + o_v[None, :], mask=m_tv, other=0.0)
    upper = i_s[:, None] <= i_s[None, :]  # [s, t]: s ≤ t, P transposed
    diff = tl.where(upper, b_gc[None, :] - b_gc[:, None], float("-inf"))
    b_pt = tl.where(upper, tl.dot(b_k, tl.trans(b_q), input_precision=prec) * tl.exp(diff) * scale, 0.0)
    tl.store(dvn + row[:, None] * V + o_v[None, :], tl.dot(b_pt.to(dt), b_do, input_precision=prec), mask=m_tv)


@triton.jit
def _dstate_kernel(q, k, w, gcum, do, dvn, dh, dht, dh0, scale, T, H: tl.constexpr, K: tl.constexpr,
                   V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                   USE_FINAL_GRAD: tl.constexpr, STORE_INITIAL_GRAD: tl.constexpr, LOCAL_DV: tl.constexpr,
                   IEEE: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_kv = m_k[:, None] & m_v[None, :]
    p_state = i_bh * K * V + o_k[:, None] * V + o_v[None, :]
    if USE_FINAL_GRAD:
        b_ds = tl.load(dht + p_state, mask=m_kv, other=0.0).to(tl.float32)
    else:
        b_ds = tl.zeros([BK, BV], dtype=tl.float32)
    i_s = tl.arange(0, BT)
    upper = i_s[:, None] <= i_s[None, :]  # [s, t]: s ≤ t, P transposed
    dt = q.dtype.element_ty
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    NT = tl.cdiv(T, BT)
    for i in range(0, NT):
        i_c = NT - 1 - i
        o_t = i_c * BT + i_s
        m_t = o_t < T
        row = (i_b * T + o_t) * H + i_h
        m_tk = m_t[:, None] & m_k[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        tl.store(dh + ((i_bh * NT + i_c) * K + o_k[:, None]) * V + o_v[None, :], b_ds, mask=m_kv)
        b_q = tl.load(q + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
        b_k = tl.load(k + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
        b_w = tl.load(w + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
        b_do = tl.load(do + row[:, None] * V + o_v[None, :], mask=m_tv, other=0.0)
        last = tl.minimum(T, i_c * BT + BT) - 1
        g_last = tl.load(gcum + (i_b * T + last) * H + i_h)
        b_gc = tl.where(m_t, tl.load(gcum + row, mask=m_t, other=0.0), g_last)
        b_kd = (b_k.to(tl.float32) * tl.exp(g_last - b_gc)[:, None]).to(dt)
        b_dvn = tl.dot(b_kd, b_ds.to(dt), input_precision=prec)
        if LOCAL_DV:  # Pᵀ dO is already there (_dvn_local_kernel)
            b_dvn += tl.load(dvn + row[:, None] * V + o_v[None, :], mask=m_tv, other=0.0)
        else:
            diff = tl.where(upper, b_gc[None, :] - b_gc[:, None], float("-inf"))
            b_pt = tl.where(upper, tl.dot(b_k, tl.trans(b_q), input_precision=prec) * tl.exp(diff) * scale, 0.0)
            b_dvn += tl.dot(b_pt.to(dt), b_do, input_precision=prec)
        tl.store(dvn + row[:, None] * V + o_v[None, :], b_dvn, mask=m_tv)
        b_qg = (b_q.to(tl.float32) * (tl.exp(b_gc) * scale)[:, None]).to(dt)
        b_ds = (b_ds * tl.exp(g_last) + tl.dot(tl.trans(b_qg), b_do, input_precision=prec)
                - tl.dot(tl.trans(b_w), b_dvn.to(dt), input_precision=prec))
    if STORE_INITIAL_GRAD:
        tl.store(dh0 + p_state, b_ds, mask=m_kv)


@triton.jit
def _chunk_rows(T, H: tl.constexpr, BT: tl.constexpr):
    """A (chunk, batch·head) program's chunk, its batch·head, the steps' offsets in the chunk, which
    steps are real, and their rows in ``[B, T, H, *]``."""
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_s = tl.arange(0, BT)
    o_t = i_c * BT + i_s
    return i_c, i_bh, i_s, o_t < T, ((i_bh // H) * T + o_t) * H + i_bh % H


@triton.jit
def _dqkw_kernel(q, k, g, h, vn, dh, do, dq, dk1, dgam, scale, T, H: tl.constexpr, K: tl.constexpr,
                 V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    i_c, i_bh, i_s, m_t, row = _chunk_rows(T, H, BT)
    NT = tl.cdiv(T, BT)
    o_k = tl.arange(0, BK)
    m_k = o_k < K
    m_tk = m_t[:, None] & m_k[None, :]
    dt = q.dtype.element_ty
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    # padded steps have g = 0, so γ there is the last real step's γ, as in the forward
    b_g = tl.load(g + row, mask=m_t, other=0.0).to(tl.float32)
    b_gc = tl.cumsum(b_g, axis=0)
    g_last = tl.sum(b_g, axis=0)
    b_q = tl.load(q + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    b_k = tl.load(k + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    causal = i_s[:, None] >= i_s[None, :]
    b_m = tl.exp(tl.where(causal, b_gc[:, None] - b_gc[None, :], float("-inf")))
    b_dqi = tl.zeros([BT, BK], dtype=tl.float32)  # dO Sᵀ
    b_dkd = tl.zeros([BT, BK], dtype=tl.float32)  # Vn dS'ᵀ: the gradient of K_d
    b_dp = tl.zeros([BT, BT], dtype=tl.float32)  # dO Vnᵀ
    b_dsl = tl.zeros([BK], dtype=tl.float32)  # Σ dS' ⊙ S over V: the state's decay over the chunk
    p_hk = (i_bh * NT + i_c) * K + o_k
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_tv = m_t[:, None] & (o_v < V)[None, :]
        m_kv = m_k[:, None] & (o_v < V)[None, :]
        b_s = tl.load(h + p_hk[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)
        b_ds = tl.load(dh + p_hk[:, None] * V + o_v[None, :], mask=m_kv, other=0.0)
        p_tv = row[:, None] * V + o_v[None, :]
        b_vn = tl.load(vn + p_tv, mask=m_tv, other=0.0).to(dt)
        b_do = tl.load(do + p_tv, mask=m_tv, other=0.0)
        b_dsl += tl.sum(b_ds * b_s, axis=1)
        b_sd, b_dsd = b_s.to(dt), b_ds.to(dt)
        b_dqi += tl.dot(b_do, tl.trans(b_sd), input_precision=prec)
        b_dkd += tl.dot(b_vn, tl.trans(b_dsd), input_precision=prec)
        b_dp += tl.dot(b_do, tl.trans(b_vn), input_precision=prec)
    # q: the state term and the chunk's attention P = scale·(QKᵀ ⊙ M)
    b_gam = tl.exp(b_gc)
    b_dqg = b_dqi * b_gam[:, None]
    b_dpm = b_dp * b_m
    b_dq = (b_dqg + tl.dot(b_dpm.to(dt), b_k, input_precision=prec)) * scale
    tl.store(dq + row[:, None] * K + o_k[None, :], b_dq.to(dq.dtype.element_ty), mask=m_tk)
    b_dpp = b_dpm * tl.dot(b_q, tl.trans(b_k), input_precision=prec) * scale
    b_dgam = (tl.sum(b_q.to(tl.float32) * b_dqg, axis=1) * scale + tl.sum(b_dpp, axis=1)
              - tl.sum(b_dpp, axis=0))
    # k: the attention and the state update's K_d = K ⊙ exp(γ_last − γ)
    b_el = tl.exp(g_last - b_gc)
    b_dk = tl.dot(tl.trans(b_dpm.to(dt)), b_q, input_precision=prec) * scale + b_dkd * b_el[:, None]
    tl.store(dk1 + row[:, None] * K + o_k[None, :], b_dk, mask=m_tk)
    b_x = tl.sum(b_dkd * b_k.to(tl.float32) * b_el[:, None], axis=1)
    b_dlast = tl.sum(b_x, axis=0) + tl.sum(b_dsl, axis=0) * tl.exp(g_last)
    b_dgam += tl.where(i_s == BT - 1, b_dlast, 0.0) - b_x
    tl.store(dgam + (i_bh * NT + i_c) * BT + i_s, b_dgam)


@triton.jit
def _dwy_kernel(k, v, g, beta, w, tm, h, dvn, dk1, dgam, dk, dv, dg, dbeta, T, H: tl.constexpr,
                K: tl.constexpr, V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                IEEE: tl.constexpr):
    i_c, i_bh, i_s, m_t, row = _chunk_rows(T, H, BT)
    NT = tl.cdiv(T, BT)
    o_k = tl.arange(0, BK)
    m_tk = m_t[:, None] & (o_k < K)[None, :]
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    dt = k.dtype.element_ty  # matmul operands in the inputs' precision, fp32 accumulation
    b_g = tl.load(g + row, mask=m_t, other=0.0).to(tl.float32)
    b_gc = tl.cumsum(b_g, axis=0)
    b_gam = tl.exp(b_gc)
    b_beta = tl.load(beta + row, mask=m_t, other=0.0).to(tl.float32)
    b_k = tl.load(k + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    b_t = tl.load(tm + row[:, None] * BT + i_s[None, :], mask=m_t[:, None], other=0.0).to(dt)
    # dW = −dVn Sᵀ, dV_b = Tᵀ dVn and U = T(βV), a V block at a time: dv, and dV_b Uᵀ for dA
    p_hk = (i_bh * NT + i_c) * K + o_k
    b_dw = tl.zeros([BT, BK], dtype=tl.float32)
    b_dau = tl.zeros([BT, BT], dtype=tl.float32)
    b_dbeta = tl.zeros([BT], dtype=tl.float32)
    for i_v in range(0, tl.cdiv(V, BV)):
        o_v = i_v * BV + tl.arange(0, BV)
        m_tv = m_t[:, None] & (o_v < V)[None, :]
        p_tv = row[:, None] * V + o_v[None, :]
        b_v = tl.load(v + p_tv, mask=m_tv, other=0.0).to(tl.float32)
        b_dvn = tl.load(dvn + p_tv, mask=m_tv, other=0.0).to(dt)
        b_s = tl.load(h + p_hk[:, None] * V + o_v[None, :], mask=(o_k < K)[:, None] & (o_v < V)[None, :], other=0.0)
        b_dw -= tl.dot(b_dvn, tl.trans(b_s.to(dt)), input_precision=prec)
        b_dvb = tl.dot(tl.trans(b_t), b_dvn, input_precision=prec)
        b_u = tl.dot(b_t, (b_v * b_beta[:, None]).to(dt), input_precision=prec)
        b_dau += tl.dot(b_dvb.to(dt), tl.trans(b_u.to(dt)), input_precision=prec)
        tl.store(dv + p_tv, (b_dvb * b_beta[:, None]).to(dv.dtype.element_ty), mask=m_tv)
        b_dbeta += tl.sum(b_dvb * b_v, axis=1)
    # dK_b = Tᵀ dW, dA = −(dK_b Wᵀ + dV_b Uᵀ) below the diagonal; A = β_t (k_t·k_s) exp(γ_t − γ_s)
    b_dkb = tl.dot(tl.trans(b_t), b_dw.to(dt), input_precision=prec)
    b_w = tl.load(w + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    strict = i_s[:, None] > i_s[None, :]
    b_da = tl.where(strict, -(tl.dot(b_dkb.to(dt), tl.trans(b_w), input_precision=prec) + b_dau), 0.0)
    b_es = tl.exp(tl.where(strict, b_gc[:, None] - b_gc[None, :], float("-inf")))
    b_kkd = tl.dot(b_k, tl.trans(b_k), input_precision=prec) * b_es
    b_dab = (b_da * b_beta[:, None] * b_es).to(dt)  # the gradient of (k_t·k_s)
    b_dk = tl.load(dk1 + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    b_dk += tl.dot(b_dab, b_k, input_precision=prec) + tl.dot(tl.trans(b_dab), b_k, input_precision=prec)
    b_dk += b_dkb * (b_beta * b_gam)[:, None]  # K_b = βΓK
    b_kf = b_k.to(tl.float32)
    tl.store(dk + row[:, None] * K + o_k[None, :], b_dk.to(dk.dtype.element_ty), mask=m_tk)
    b_daa = b_da * b_beta[:, None] * b_kkd
    b_dgam = tl.load(dgam + (i_bh * NT + i_c) * BT + i_s)
    b_dgam += (tl.sum(b_daa, axis=1) - tl.sum(b_daa, axis=0)
               + tl.sum(b_dkb * b_kf * (b_beta * b_gam)[:, None], axis=1))
    b_dbeta += tl.sum(b_da * b_kkd, axis=1) + tl.sum(b_dkb * b_kf * b_gam[:, None], axis=1)
    b_dg = tl.sum(b_dgam, axis=0) - tl.cumsum(b_dgam, axis=0) + b_dgam  # γ_t = Σ_{s ≤ t} g_s
    tl.store(dbeta + row, b_dbeta.to(dbeta.dtype.element_ty), mask=m_t)
    tl.store(dg + row, b_dg.to(dg.dtype.element_ty), mask=m_t)


def chunk_gated_delta_rule_bwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float, initial_state: torch.Tensor | None, saved: tuple[torch.Tensor, ...], do: torch.Tensor,
    dht: torch.Tensor | None, launch: BackwardLaunch = BackwardLaunch(), widen: bool = True,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """dq, dk, dv, dg, dβ (each in its input's dtype) and dh0 (fp32, None without an initial state)
    of the forward's output o and final state, given their gradients ``do`` and ``dht``; ``saved`` is
    what ``chunk_gated_delta_rule_fwd(..., save=True)`` returned after o and the final state. fp32
    inputs multiply as three TF32 products (fp32 accuracy on tensor cores; a plain fp32 dot unrolls
    into spilling FMA code) unless ``torch.backends.cuda.matmul.allow_tf32`` is set (one TF32 product).
    16-bit inputs are widened to fp32 and multiply as one TF32 product: with 16-bit operands Triton 3.6
    compiled these kernels wrong on an H200 (gradients off by 20-80%, and out-of-range shared memory
    at 8 warps, found by compute-sanitizer), while the fp32 build matched the reference (flash-linear-
    attention reports the same class of fault for Triton < 3.7.1 on Hopper). ``widen=False`` runs the
    16-bit build, for benchmarks/backward_sweep.py to check other launch shapes and stacks."""
    dtypes = [x.dtype for x in (q, k, v, g, beta)]
    narrow = q.dtype != torch.float32
    w, gcum, tm, h, vn = saved
    if narrow and widen:
        q, k, v, g, beta, w, do = (x.float() for x in (q, k, v, g, beta, w, do))
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = tm.shape[-1]
    NT = triton.cdiv(T, BT)
    BK = max(16, triton.next_power_of_2(K))
    BVW = max(16, triton.next_power_of_2(V))
    ieee = not narrow and not torch.backends.cuda.matmul.allow_tf32
    do = do.contiguous()
    f32 = dict(dtype=torch.float32, device=q.device)
    dvn, dh = torch.empty(B, T, H, V, **f32), torch.empty(B, H, NT, K, V, **f32)
    dh0 = torch.empty(B, H, K, V, **f32) if initial_state is not None else None
    BV = launch.dstate_block or state_v_block(B, H, V)
    if launch.local_dv:
        _dvn_local_kernel[(NT, B * H, triton.cdiv(V, BV))](q, k, gcum, do, dvn, scale, T, H, K, V, BT, BK, BV,
                                                           IEEE=ieee, num_warps=launch.dqkw[0], num_stages=1)
    _dstate_kernel[(triton.cdiv(V, BV), B * H)](
        q, k, w, gcum, do, dvn, dh, dht.contiguous() if dht is not None else None, dh0, scale, T, H, K, V,
        BT, BK, BV, USE_FINAL_GRAD=dht is not None, STORE_INITIAL_GRAD=dh0 is not None, LOCAL_DV=launch.local_dv,
        IEEE=ieee, num_warps=launch.dstate[0], num_stages=launch.dstate[1],
    )
    dq, dk, dv = torch.empty_like(q), torch.empty_like(k), torch.empty_like(v)
    dg, dbeta = torch.empty_like(g), torch.empty_like(beta)
    dk1, dgam = torch.empty(B, T, H, K, **f32), torch.empty(B, H, NT, BT, **f32)
    BVC = min(BVW, 32)
    _dqkw_kernel[(NT, B * H)](q, k, g, h, vn, dh, do, dq, dk1, dgam, scale, T, H, K, V, BT, BK, BVC,
                              IEEE=ieee, num_warps=launch.dqkw[0], num_stages=launch.dqkw[1])
    _dwy_kernel[(NT, B * H)](k, v, g, beta, w, tm, h, dvn, dk1, dgam, dk, dv, dg, dbeta, T, H, K, V, BT, BK,
                             BVC, IEEE=ieee, num_warps=launch.dwy[0], num_stages=launch.dwy[1])
    return (*(x.to(d) for x, d in zip((dq, dk, dv, dg, dbeta), dtypes)), dh0)

