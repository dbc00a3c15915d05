"""Triton chunked forward of the gated delta rule (the WY form of ``chunk_torch.py``), in two kernels
(three when split).

1. ``_wy_kernel``, one program per (chunk, batch·head), all chunks in parallel: the cumulative
   log-decay γ, ``A`` and ``T = (I + A)⁻¹`` — by doubling the inverse's diagonal blocks, two
   tensor-core matmuls a level (the product (I − A)(I + A²)(I + A⁴)… is as exact in arithmetic and
   as cheap, but cancels into garbage when keys barely change) — then ``W = T(βΓK)`` and ``U = T(βV)``.
2. ``_state_kernel``, one program per (V block, batch·head), chunks in sequence: carries the fp32
   state S through the chunks and writes the outputs
   ``O = scale·(Γ Q S + (QKᵀ ⊙ M)(U − W S))`` as it goes, so no per-chunk state is stored.
   Split (when there are too few batch·head pairs to fill the GPU, as flash-linear-attention does):
   the state pass only saves each chunk's starting state and new values, and
3. ``_output_kernel``, one program per (V block, chunk, batch·head), writes every chunk's outputs at once.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

CHUNK = 64  # steps per chunk


@triton.jit
def _wy_kernel(k, v, g, beta, w, u, gcum, tm, T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
               BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, LOG_BT: tl.constexpr,
               SAVE_T: tl.constexpr, IEEE: tl.constexpr):
    i_c, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_t = i_c * BT + tl.arange(0, BT)
    m_t = o_t < T
    o_k, o_v = tl.arange(0, BK), tl.arange(0, BV)
    row = (i_b * T + o_t) * H + i_h  # [BT] index of (b, t, h)
    b_g = tl.load(g + row, mask=m_t, other=0.0).to(tl.float32)
    b_gc = tl.cumsum(b_g, axis=0)
    b_beta = tl.load(beta + row, mask=m_t, other=0.0).to(tl.float32)
    p_k = k + row[:, None] * K + o_k[None, :]
    b_k = tl.load(p_k, mask=m_t[:, None] & (o_k[None, :] < K), other=0.0)
    p_v = v + row[:, None] * V + o_v[None, :]
    b_v = tl.load(p_v, mask=m_t[:, None] & (o_v[None, :] < V), other=0.0)
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    b_kk = tl.dot(b_k, tl.trans(b_k), input_precision=prec)
    i_s = tl.arange(0, BT)
    strict = i_s[:, None] > i_s[None, :]
    diff = tl.where(strict, b_gc[:, None] - b_gc[None, :], float("-inf"))
    b_a = tl.where(strict, b_beta[:, None] * b_kk * tl.exp(diff), 0.0)
    # T = (I + A)⁻¹ by doubling blocks: with T_s the inverse's diagonal blocks of size s, and L_s the
    # part of A below them inside each block of size 2s, T_2s = T_s − T_s L_s T_s (every factor a piece
    # of the true inverse, so nothing cancels, unlike the product (I − A)(I + A²)(I + A⁴)…)
    b_t = tl.where(i_s[:, None] == i_s[None, :], 1.0, 0.0)
    for lvl in tl.static_range(LOG_BT):
        size = 1 << lvl
        below = (((i_s[:, None] // size) == (i_s[None, :] // size) + 1)
                 & ((i_s[:, None] // (2 * size)) == (i_s[None, :] // (2 * size))))
        b_l = tl.where(below, b_a, 0.0)
        b_t = b_t - tl.dot(b_t, tl.dot(b_l, b_t, input_precision=prec), input_precision=prec)
    if SAVE_T:  # for the backward, [B, T, H, BT]
        tl.store(tm + row[:, None] * BT + i_s[None, :], b_t, mask=m_t[:, None])
    b_kb = (b_k.to(tl.float32) * (b_beta * tl.exp(b_gc))[:, None])
    b_vb = (b_v.to(tl.float32) * b_beta[:, None])
    b_w = tl.dot(b_t, b_kb, input_precision=prec)
    b_u = tl.dot(b_t, b_vb, input_precision=prec)
    tl.store(w + row[:, None] * K + o_k[None, :], b_w.to(w.dtype.element_ty),
             mask=m_t[:, None] & (o_k[None, :] < K))
    tl.store(u + row[:, None] * V + o_v[None, :], b_u.to(u.dtype.element_ty),
             mask=m_t[:, None] & (o_v[None, :] < V))
    tl.store(gcum + row, b_gc, mask=m_t)


@triton.jit
def _state_kernel(q, k, w, u, gcum, o, h0, ht, h, vn, scale, T, H: tl.constexpr, K: tl.constexpr,
                  V: tl.constexpr, BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr,
                  USE_INITIAL_STATE: tl.constexpr, STORE_FINAL_STATE: tl.constexpr, SAVE: tl.constexpr,
                  STORE_O: tl.constexpr, IEEE: tl.constexpr):
    i_v, i_bh = tl.program_id(0), tl.program_id(1)
    i_b, i_h = i_bh // H, i_bh % H
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    p_state = i_bh * K * V + o_k[:, None] * V + o_v[None, :]
    if USE_INITIAL_STATE:
        b_s = tl.load(h0 + p_state, mask=m_k[:, None] & m_v[None, :], other=0.0).to(tl.float32)
    else:
        b_s = tl.zeros([BK, BV], dtype=tl.float32)
    i_s = tl.arange(0, BT)
    causal = i_s[:, None] >= i_s[None, :]
    dt = q.dtype.element_ty
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    for i_c in range(0, tl.cdiv(T, BT)):
        o_t = i_c * BT + i_s
        m_t = o_t < T
        row = (i_b * T + o_t) * H + i_h
        m_tk = m_t[:, None] & m_k[None, :]
        m_tv = m_t[:, None] & m_v[None, :]
        b_k = tl.load(k + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
        b_w = tl.load(w + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
        b_u = tl.load(u + row[:, None] * V + o_v[None, :], mask=m_tv, other=0.0).to(tl.float32)
        last = tl.minimum(T, i_c * BT + BT) - 1
        g_last = tl.load(gcum + (i_b * T + last) * H + i_h)
        b_gc = tl.load(gcum + row, mask=m_t, other=0.0)
        b_gc = tl.where(m_t, b_gc, g_last)  # padded steps: no decay, and k = u = q = 0
        b_sd = b_s.to(dt)
        b_vnew = b_u - tl.dot(b_w, b_sd, input_precision=prec)  # [BT, BV]
        if SAVE:  # for the backward: the state at the chunk's start and the new values
            p_h = ((i_bh * tl.cdiv(T, BT) + i_c) * K + o_k[:, None]) * V + o_v[None, :]
            tl.store(h + p_h, b_s.to(h.dtype.element_ty), mask=m_k[:, None] & m_v[None, :])
            tl.store(vn + row[:, None] * V + o_v[None, :], b_vnew.to(vn.dtype.element_ty), mask=m_tv)
        if STORE_O:
            b_q = tl.load(q + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
            b_qk = tl.dot(b_q, tl.trans(b_k), input_precision=prec)
            diff = tl.where(causal, b_gc[:, None] - b_gc[None, :], float("-inf"))
            b_qk = tl.where(causal, b_qk * tl.exp(diff), 0.0)
            b_o = tl.dot(b_q, b_sd, input_precision=prec) * tl.exp(b_gc)[:, None]
            b_o += tl.dot(b_qk.to(dt), b_vnew.to(dt), input_precision=prec)
            tl.store(o + row[:, None] * V + o_v[None, :], (b_o * scale).to(o.dtype.element_ty), mask=m_tv)
        b_kd = (b_k.to(tl.float32) * tl.exp(g_last - b_gc)[:, None]).to(dt)
        b_s = b_s * tl.exp(g_last) + tl.dot(tl.trans(b_kd), b_vnew.to(dt), input_precision=prec)
    if STORE_FINAL_STATE:
        tl.store(ht + p_state, b_s, mask=m_k[:, None] & m_v[None, :])


@triton.jit
def _output_kernel(q, k, gcum, h, vn, o, scale, T, H: tl.constexpr, K: tl.constexpr, V: tl.constexpr,
                   BT: tl.constexpr, BK: tl.constexpr, BV: tl.constexpr, IEEE: tl.constexpr):
    """The split forward's second half, every chunk at once: ``O = scale·(Γ Q S + (QKᵀ ⊙ M) Vn)``
    from the chunk's starting state S and new values Vn that the state pass saved."""
    i_v, i_c, i_bh = tl.program_id(0), tl.program_id(1), tl.program_id(2)
    i_b, i_h = i_bh // H, i_bh % H
    i_s = tl.arange(0, BT)
    o_t = i_c * BT + i_s
    m_t = o_t < T
    row = (i_b * T + o_t) * H + i_h
    o_k = tl.arange(0, BK)
    o_v = i_v * BV + tl.arange(0, BV)
    m_k, m_v = o_k < K, o_v < V
    m_tk, m_tv = m_t[:, None] & m_k[None, :], m_t[:, None] & m_v[None, :]
    dt = q.dtype.element_ty
    prec: tl.constexpr = "tf32x3" if IEEE else "tf32"
    b_q = tl.load(q + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    b_k = tl.load(k + row[:, None] * K + o_k[None, :], mask=m_tk, other=0.0)
    g_last = tl.load(gcum + (i_b * T + tl.minimum(T, i_c * BT + BT) - 1) * H + i_h)
    b_gc = tl.where(m_t, tl.load(gcum + row, mask=m_t, other=0.0), g_last)  # padded steps: no decay
    p_h = ((i_bh * tl.cdiv(T, BT) + i_c) * K + o_k[:, None]) * V + o_v[None, :]
    b_s = tl.load(h + p_h, mask=m_k[:, None] & m_v[None, :], other=0.0).to(dt)
    b_vn = tl.load(vn + row[:, None] * V + o_v[None, :], mask=m_tv, other=0.0).to(dt)
    causal = i_s[:, None] >= i_s[None, :]
    b_qk = tl.dot(b_q, tl.trans(b_k), input_precision=prec)
    b_qk = tl.where(causal, b_qk * tl.exp(tl.where(causal, b_gc[:, None] - b_gc[None, :], float("-inf"))), 0.0)
    b_o = tl.dot(b_q, b_s, input_precision=prec) * tl.exp(b_gc)[:, None]
    b_o += tl.dot(b_qk.to(dt), b_vn, input_precision=prec)
    tl.store(o + row[:, None] * V + o_v[None, :], (b_o * scale).to(o.dtype.element_ty), mask=m_tv)


def state_v_block(B: int, H: int, V: int) -> int:
    """The V block a state pass (forward or backward) carries per program: wide when there are enough
    (batch, head) pairs to fill the GPU, else narrower (swept on an H200: BV 32/64, 4/8 warps, 1-3
    stages; BENCHMARKS.md)."""
    return max(16, min(max(16, triton.next_power_of_2(V)), 64 if B * H * triton.cdiv(V, 64) >= 128 else 32))


def split_pays(B: int, T: int, H: int, V: int, device: torch.device) -> bool:
    """Whether to split the forward: when the fused state pass has fewer programs (a V block of 32 per
    batch·head) than the GPU has multiprocessors and the sequence has ≥ 64 chunks. Measured on an H200
    (benchmarks/kernels.py, BENCHMARKS.md): split 0.26 against fused 0.32 ms at 1×4096×16×128×128 (64
    programs) and 1.20 against 1.36 ms at 8×16384×8×64×64 (128), fused 1.08 against split 1.65 ms at
    4×8192×16×128×128 (256 programs); shorter sequences keep the fused pass, which stores no chunk states."""
    if device.type != "cuda" or triton.cdiv(T, CHUNK) < 64:
        return False
    return B * H * triton.cdiv(V, 32) < torch.cuda.get_device_properties(device).multi_processor_count


def chunk_gated_delta_rule_fwd(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float, initial_state: torch.Tensor | None, output_final_state: bool,
    save: bool = False, split: bool | None = None, state_block: int | None = None,
) -> tuple[torch.Tensor, ...]:
    """Launch the kernels; inputs ``[B, T, H, *]`` contiguous, outputs in v's dtype, state fp32; fp32
    inputs multiply as three TF32 products (fp32 accuracy on tensor cores; a plain fp32 dot unrolls
    into spilling FMA code) unless ``torch.backends.cuda.matmul.allow_tf32`` is set (one TF32 product).
    ``save`` (for the backward) also returns W, γ and T = (I + A)⁻¹ ``[B, T, H, BT]``
    (fp32), each chunk's starting state ``[B, H, NT, K, V]`` and the new values ``U − W S``
    ``[B, T, H, V]`` (both fp32). ``split`` (default: :func:`split_pays`) runs the state pass without
    outputs, keeping those two in the inputs' dtype, and then every chunk's outputs at once.
    ``state_block``: the V block of the state pass (default :func:`state_v_block`; benchmarks sweep it)."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    BT = CHUNK
    BK = max(16, triton.next_power_of_2(K))
    BVW = max(16, triton.next_power_of_2(V))
    ieee = q.dtype == torch.float32 and not torch.backends.cuda.matmul.allow_tf32  # PyTorch's own switch
    w = torch.empty_like(k)
    u = torch.empty_like(v)
    gcum = torch.empty(B, T, H, dtype=torch.float32, device=q.device)
    NT = triton.cdiv(T, BT)
    tm = torch.empty(B, T, H, BT, dtype=torch.float32, device=q.device) if save else None
    _wy_kernel[(NT, B * H)](k, v, g, beta, w, u, gcum, tm, T, H, K, V, BT, BK, BVW,
                            LOG_BT=BT.bit_length() - 1, SAVE_T=save, IEEE=ieee, num_warps=4)
    o = torch.empty_like(v)
    BV = state_block or state_v_block(B, H, V)
    # three stages of prefetch fit the shared memory for 16-bit inputs up to K = 128; fewer otherwise
    stages = 3 if q.element_size() <= 2 and BK <= 128 else (2 if BK <= 128 else 1)
    ht = torch.empty(B, H, K, V, dtype=torch.float32, device=q.device) if output_final_state else None
    h0 = initial_state.float().contiguous() if initial_state is not None else None
    split = split_pays(B, T, H, V, q.device) if split is None else split
    # the backward reads the chunk states and new values in fp32; the output pass alone in the inputs'
    # dtype, as the fused pass multiplies them (the same numbers, half the bytes for 16-bit inputs)
    kept = torch.float32 if save else v.dtype
    h = torch.empty(B, H, NT, K, V, dtype=kept, device=q.device) if save or split else None
    vn = torch.empty(B, T, H, V, dtype=kept, device=q.device) if save or split else None
    _state_kernel[(triton.cdiv(V, BV), B * H)](
        q, k, w, u, gcum, o, h0, ht, h, vn, scale, T, H, K, V, BT, BK, BV,
        USE_INITIAL_STATE=h0 is not None, STORE_FINAL_STATE=output_final_state, SAVE=save or split,
        STORE_O=not split, IEEE=ieee, num_warps=4, num_stages=stages,
    )
    if split:
        _output_kernel[(triton.cdiv(V, BV), NT, B * H)](q, k, gcum, h, vn, o, scale, T, H, K, V, BT, BK, BV,
                                                         IEEE=ieee, num_warps=4)
    return (o, ht, w, gcum, tm, h, vn) if save else (o, ht)
