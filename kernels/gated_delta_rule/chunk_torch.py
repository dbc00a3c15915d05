"""The chunkwise-parallel (WY) form of the gated delta rule in plain, differentiable PyTorch.

Within a chunk of ``BT`` steps starting from state S₀, with γ_t the cumulative log-decay and
Γ_t = exp(γ_t), the recurrence unrolls to (Yang et al. 2024, sec. 3; the WY representation of
Householder products, Bischof & Van Loan 1987):

    A_ts = β_t (k_t·k_s) exp(γ_t − γ_s)  (s < t),   T = (I + A)⁻¹   (unit lower triangular)
    W = T (β Γ K),   U = T (β V),   u = U − W S₀             (the "new values")
    O = scale · (Γ Q S₀ + (Q Kᵀ ⊙ M) u),   M_ts = exp(γ_t − γ_s) (s ≤ t)
    S_end = Γ_last S₀ + (K ⊙ exp(γ_last − γ))ᵀ u

Everything but the chunk-to-chunk state hand-off runs for all chunks at once. This is the CPU
training path (autograd flows through it) and the backward of the Triton forward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def chunk_size_for(B: int, T: int, H: int, K: int, device: torch.device) -> int:
    """The chunk length: 64 on a GPU; on a CPU 16 for many narrow heads and 32 otherwise (the triangular
    solve and the [BT, BT] products grow with BT², the loop over chunks with T / BT:
    benchmarks/chunk_size_cpu.py), never longer than T rounded up to a power of two (a caption thread
    catching up on 2 frames does not pad them to 64)."""
    if device.type == "cuda":
        return 64
    return min(1 << max(T - 1, 0).bit_length(), 16 if K <= 32 and B * H >= 16 else 32)


def chunk_gated_delta_rule_torch(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float, initial_state: torch.Tensor | None = None, chunk_size: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Same contract as :func:`naive_recurrent_gated_delta_rule`; fp32 inside. ``chunk_size``: by
    default :func:`chunk_size_for` the shape and device."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    dtype = v.dtype
    BT = chunk_size or chunk_size_for(B, T, H, K, q.device)
    pad = (-T) % BT
    # [B, T, H, D] -> [B, H, N, BT, D]; padded steps have k = v = 0, g = 0: they change nothing
    def split(x: torch.Tensor) -> torch.Tensor:
        x = x.float().transpose(1, 2)
        x = F.pad(x, (0, 0, 0, pad)) if x.dim() == 4 else F.pad(x, (0, pad))
        return x.reshape(B, H, -1, BT, *x.shape[3:])

    q, k, v, g, beta = split(q), split(k), split(v), split(g), split(beta)
    gc = g.cumsum(-1)  # [B, H, N, BT]
    decay = (gc[..., :, None] - gc[..., None, :])
    lower = torch.ones(BT, BT, dtype=torch.bool, device=q.device).tril(-1)
    causal = lower | torch.eye(BT, dtype=torch.bool, device=q.device)
    # exp of masked (possibly huge positive, above the diagonal) differences would overflow: mask first
    decay_strict = torch.where(lower, decay, torch.full_like(decay, -torch.inf)).exp()
    decay_causal = torch.where(causal, decay, torch.full_like(decay, -torch.inf)).exp()
    A = beta[..., None] * (k @ k.transpose(-1, -2)) * decay_strict
    eye = torch.eye(BT, device=q.device)
    Tm = torch.linalg.solve_triangular(eye + A, eye.expand_as(A), upper=False, unitriangular=True)
    W = Tm @ (beta[..., None] * gc.exp()[..., None] * k)
    U = Tm @ (beta[..., None] * v)
    Aqk = (q @ k.transpose(-1, -2)) * decay_causal
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.float()
    outs = []
    for n in range(q.shape[2]):
        u = U[:, :, n] - W[:, :, n] @ S
        outs.append(scale * (gc[:, :, n, :, None].exp() * (q[:, :, n] @ S) + Aqk[:, :, n] @ u))
        g_last = gc[:, :, n, -1]
        S = g_last.exp()[..., None, None] * S + (k[:, :, n] * (g_last[..., None] - gc[:, :, n]).exp()[..., None]).transpose(-1, -2) @ u
    o = torch.stack(outs, dim=2).reshape(B, H, -1, V)[:, :, :T].transpose(1, 2)
    return o.to(dtype), S
