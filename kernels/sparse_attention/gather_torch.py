"""Block-sparse attention in PyTorch that reads only the kept key blocks (gathered per query block):
the CPU path, whose work grows with the blocks kept rather than with the keys."""

from __future__ import annotations

import torch


def block_sparse_attention_gather(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, lut: torch.Tensor,
                                  counts: torch.Tensor, block: int, causal: bool, scale: float) -> torch.Tensor:
    """The same contract as ``reference.block_sparse_attention_reference`` with the kept blocks given as
    ``lut``/``counts`` (``mask.select_blocks``); k and v may be views (a preallocated cache's filled part)."""
    B, H, Tq, D = q.shape
    Tk, Dv = k.shape[2], v.shape[-1]
    nq, width = lut.shape[-2], lut.shape[-1]
    offsets = torch.arange(block, device=q.device)
    tokens = (lut.long()[..., None] * block + offsets).flatten(-2)  # [B, H, nq, width·block]
    kept = (torch.arange(width, device=q.device) < counts[..., None]).repeat_interleave(block, -1) & (tokens < Tk)
    tokens = tokens.clamp_max(Tk - 1)
    flat = tokens.flatten(2)  # [B, H, nq·width·block]
    keys = k.gather(2, flat[..., None].expand(-1, -1, -1, D)).view(B, H, nq, -1, D)
    values = v.gather(2, flat[..., None].expand(-1, -1, -1, Dv)).view(B, H, nq, -1, Dv)
    rows = block if nq > 1 else Tq  # one short query block (a streaming step): no padding to a block
    queries = torch.nn.functional.pad(q, (0, 0, 0, nq * rows - Tq)).view(B, H, nq, rows, D)
    scores = (queries.float() @ keys.float().transpose(-1, -2)) * scale  # [B, H, nq, rows, width·block]
    visible = kept[..., None, :]
    if causal:
        at = (torch.arange(nq, device=q.device)[:, None] * block + offsets[:rows])[None, None, :, :, None]
        visible = visible & (tokens[..., None, :] <= at)
    out = scores.masked_fill(~visible, float("-inf")).softmax(-1).nan_to_num(0.0) @ values.float()
    return out.view(B, H, nq * rows, Dv)[:, :, :Tq].to(q.dtype)
