"""The gated delta rule — linear attention whose state is a fast-weight memory — with one
dispatching entry point per form:

    >>> o, S = gated_delta_rule(q, k, v, g, beta)               # a whole sequence, [B, T, H, *]
    >>> o1, S = gated_delta_rule_step(q1, k1, v1, g1, b1, S)    # one streaming step, [B, H, *]

Per step, for each batch and head: ``S ← exp(g)·S;  u = β·(v − Sᵀk);  S ← S + k uᵀ;
o = Sᵀ(scale·q)``. Backends: ``"torch"`` (the fp32 recurrent reference, ``naive.py``),
``"chunked"`` (the differentiable chunkwise PyTorch form, ``chunk_torch.py``), ``"triton"``
(``chunk_triton.py`` / ``step_triton.py``, the backward ``chunk_triton_backward.py``) and
``"auto"``: Triton for CUDA tensors, else chunked (T > 1) or the reference (one step). The
environment variable ``THALAMUS_KERNEL_BACKEND`` overrides ``"auto"`` (e.g. ``torch`` to debug).
"""

from __future__ import annotations

import os

import torch

from kernels.gated_delta_rule.chunk_torch import chunk_gated_delta_rule_torch
from kernels.gated_delta_rule.naive import naive_recurrent_gated_delta_rule

BACKENDS = ("auto", "torch", "chunked", "triton")


def _resolve(backend: str, x: torch.Tensor, steps: int) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = os.environ.get("THALAMUS_KERNEL_BACKEND", "auto")
        if backend not in BACKENDS:
            raise ValueError(f"THALAMUS_KERNEL_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        backend = "triton" if x.is_cuda else ("chunked" if steps > 1 else "torch")
    return backend


def _check(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
           state: torch.Tensor | None, step: bool) -> None:
    lead = q.shape[:-1]
    names = "[B, H, K]" if step else "[B, T, H, K]"
    if q.dim() != (3 if step else 4):
        raise ValueError(f"q must be {names}, got shape {tuple(q.shape)}")
    if k.shape != q.shape:
        raise ValueError(f"k must have q's shape {tuple(q.shape)}, got {tuple(k.shape)}")
    if v.shape[:-1] != lead:
        raise ValueError(f"v must be {tuple(lead)} + (V,), got {tuple(v.shape)}")
    for name, x in (("g", g), ("beta", beta)):
        if x.shape != lead:
            raise ValueError(f"{name} must have shape {tuple(lead)}, got {tuple(x.shape)}")
    expected = (q.shape[0], q.shape[-2], q.shape[-1], v.shape[-1])
    if state is not None and tuple(state.shape) != expected:
        raise ValueError(f"state must have shape {expected} ([B, H, K, V]), got {tuple(state.shape)}")


class _TritonChunk(torch.autograd.Function):
    """Triton forward and backward (``chunk_triton.py``, ``chunk_triton_backward.py``); with
    gradients wanted, the forward keeps its per-chunk states for the backward."""

    @staticmethod
    def forward(ctx, q, k, v, g, beta, h0, scale):  # type: ignore[override]
        from kernels.gated_delta_rule.chunk_triton import chunk_gated_delta_rule_fwd

        if not any(ctx.needs_input_grad):
            return chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, output_final_state=True)
        o, ht, *saved = chunk_gated_delta_rule_fwd(q, k, v, g, beta, scale, h0, output_final_state=True, save=True)
        ctx.save_for_backward(q, k, v, g, beta, h0, *saved)
        ctx.scale = scale
        return o, ht

    @staticmethod
    def backward(ctx, do, dht):  # type: ignore[override]
        from kernels.gated_delta_rule.chunk_triton_backward import chunk_gated_delta_rule_bwd

        q, k, v, g, beta, h0, *saved = ctx.saved_tensors
        return (*chunk_gated_delta_rule_bwd(q, k, v, g, beta, ctx.scale, h0, tuple(saved), do, dht), None)


def gated_delta_rule(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    scale: float | None = None, initial_state: torch.Tensor | None = None,
    output_final_state: bool = True, backend: str = "auto",
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Gated delta rule over a sequence.

    Args:
        q, k: ``[B, T, H, K]`` (not normalized here: callers normalize).
        v: ``[B, T, H, V]``.
        g: ``[B, T, H]`` log-decay (≤ 0).  beta: ``[B, T, H]`` in (0, 1).
        scale: multiplies q; default ``K ** -0.5``.
        initial_state: ``[B, H, K, V]`` (fp32), the state carried in from an earlier call.
        output_final_state: return the state after the last step (else None).
        backend: ``"auto"``, ``"torch"``, ``"chunked"`` or ``"triton"``.

    Returns:
        o ``[B, T, H, V]`` in v's dtype and the final state ``[B, H, K, V]`` in fp32 (or None).
    """
    _check(q, k, v, g, beta, initial_state, step=False)
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    backend = _resolve(backend, q, q.shape[1])
    if backend == "torch":
        o, S = naive_recurrent_gated_delta_rule(q, k, v, g, beta, scale, initial_state)
    elif backend == "chunked":
        o, S = chunk_gated_delta_rule_torch(q, k, v, g, beta, scale, initial_state)
    else:
        h0 = initial_state.float().contiguous() if initial_state is not None else None
        o, S = _TritonChunk.apply(q.contiguous(), k.contiguous(), v.contiguous(), g.contiguous(),
                                  beta.contiguous(), h0, scale)
    return o.to(v.dtype), (S if output_final_state else None)


def gated_delta_rule_step(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, g: torch.Tensor, beta: torch.Tensor,
    state: torch.Tensor, scale: float | None = None, backend: str = "auto", in_place: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One streaming step: q, k ``[B, H, K]``, v ``[B, H, V]``, g, beta ``[B, H]``, state
    ``[B, H, K, V]`` fp32 → o ``[B, H, V]`` (v's dtype) and the new state (fp32): a new tensor, or
    with ``in_place`` the given state overwritten (a server of many streams then reads and writes its
    state once a step and allocates nothing; it must be fp32 and contiguous). The Triton step has no
    backward: with grads, use ``"torch"``."""
    _check(q, k, v, g, beta, state, step=True)
    if in_place and (state.dtype != torch.float32 or not state.is_contiguous()):
        raise ValueError(f"in_place needs a contiguous fp32 state, got {state.dtype}"
                         f"{'' if state.is_contiguous() else ', not contiguous'}")
    scale = q.shape[-1] ** -0.5 if scale is None else scale
    backend = _resolve(backend, q, 1)
    if backend == "triton":
        from kernels.gated_delta_rule.step_triton import gated_delta_rule_step_fwd

        return gated_delta_rule_step_fwd(q.contiguous(), k.contiguous(), v.contiguous(), g.contiguous(),
                                         beta.contiguous(), state if in_place else state.float().contiguous(),
                                         scale, in_place)
    o, S = naive_recurrent_gated_delta_rule(q[:, None], k[:, None], v[:, None], g[:, None],
                                            beta[:, None], scale, state)
    return o[:, 0].to(v.dtype), state.copy_(S) if in_place else S


__all__ = ["BACKENDS", "gated_delta_rule", "gated_delta_rule_step", "chunk_gated_delta_rule_torch",
           "naive_recurrent_gated_delta_rule"]
