"""Dense PyTorch attention restricted to a block mask: the definition the Triton kernel is checked against."""

from __future__ import annotations

import torch


def block_sparse_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor,
                                     block: int, causal: bool, scale: float) -> torch.Tensor:
    """q ``[B, H, Tq, D]``, k ``[B, H, Tk, D]``, v ``[B, H, Tk, Dv]``, block mask ``[B, H, nq, nk]`` → o
    ``[B, H, Tq, Dv]`` in q's dtype: softmax attention (fp32) over the keys of the kept blocks only
    (and, with ``causal``, none after the query)."""
    Tq, Tk = q.shape[2], k.shape[2]
    keep = mask.repeat_interleave(block, -2)[..., :Tq, :].repeat_interleave(block, -1)[..., :Tk]
    if causal:
        keep = keep & torch.ones(Tq, Tk, dtype=torch.bool, device=q.device).tril()
    scores = (q.float() @ k.float().transpose(-1, -2)) * scale
    return (scores.masked_fill(~keep, float("-inf")).softmax(-1) @ v.float()).to(q.dtype)
