"""The plain fp32 recurrent reference of the gated delta rule: one time step at a time.

For each batch b, head h and time t (``S`` is ``[K, V]``):

    S ← exp(g_t) · S
    u = β_t · (v_t − Sᵀ k_t)
    S ← S + k_t uᵀ
    o_t = Sᵀ (scale · q_t)

It is the definition every faster backend is checked against (Yang et al. 2024, "Gated Delta
Networks"; the "test-time KV binding" view: S takes one gradient step on ‖Sᵀk − v‖² per token).
"""

from __future__ import annotations

import torch


def naive_recurrent_gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float, initial_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """q, k ``[B, T, H, K]``, v ``[B, T, H, V]``, g, beta ``[B, T, H]`` → o ``[B, T, H, V]`` (input
    dtype), final state ``[B, H, K, V]`` (fp32). All arithmetic is fp32."""
    B, T, H, K = q.shape
    V = v.shape[-1]
    q, k, v, g, beta = (x.float() for x in (q, k, v, g, beta))
    S = q.new_zeros(B, H, K, V) if initial_state is None else initial_state.float().clone()
    out = []
    for t in range(T):
        S = S * g[:, t].exp()[..., None, None]
        u = beta[:, t, :, None] * (v[:, t] - torch.einsum("bhkv,bhk->bhv", S, k[:, t]))
        S = S + torch.einsum("bhk,bhv->bhkv", k[:, t], u)
        out.append(torch.einsum("bhkv,bhk->bhv", S, q[:, t] * scale))
    o = torch.stack(out, dim=1) if out else v.new_zeros(B, 0, H, V)
    return o, S
