"""Which key blocks each query block attends to: hybrid top-k ∪ top-p over mean-pooled blocks.

After SpargeAttention2 (Zhang et al. 2026): pool each block of queries and of keys to its mean, take the
softmax of the pooled scores, and keep for each query block the key blocks that hold probability mass
``top_p`` (the shortest prefix of the blocks sorted by mass), at least one and at most ``top_k``: top-p
alone keeps too few blocks where one block dominates and too many where the row is flat; the cap and
the floor bound both.
"""

from __future__ import annotations

import torch


def pool_blocks(x: torch.Tensor, block: int) -> torch.Tensor:
    """``[B, H, T, D]`` → ``[B, H, ⌈T/block⌉, D]``: each block's mean (fp32; the last block may be short)."""
    B, H, T, D = x.shape
    n, full = -(-T // block), T // block
    sums = x[:, :, :full * block].unflatten(2, (full, block)).sum(3, dtype=torch.float32)  # no fp32 copy of x
    if full < n:
        sums = torch.cat([sums, x[:, :, full * block:].sum(2, keepdim=True, dtype=torch.float32)], 2)
    sizes = torch.full((n,), float(block), device=x.device)
    sizes[-1] = T - (n - 1) * block
    return sums / sizes[:, None]


def block_scores(q_means: torch.Tensor, k_means: torch.Tensor, scale: float) -> torch.Tensor:
    """The block means' scaled scores, ``[B, H, nq, nk]`` (fp32)."""
    return q_means @ k_means.float().transpose(-1, -2) * scale


def block_probs(q_means: torch.Tensor, k_means: torch.Tensor, causal: bool, scale: float) -> torch.Tensor:
    """The softmax over key blocks of the block means' scores, ``[B, H, nq, nk]``; with ``causal`` the key
    blocks after a query block get 0."""
    scores = block_scores(q_means, k_means, scale)
    if causal:
        nq, nk = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(nq, nk, dtype=torch.bool, device=scores.device).triu(1), float("-inf"))
    return scores.softmax(-1)


def local_blocks(nq: int, nk: int, local: int, causal: bool, device: torch.device) -> torch.Tensor:
    """``[nq, nk]``: the ``local`` newest key blocks each query block always keeps (its own and the ones
    before it when causal; the last ones otherwise, as for a query at the end of a stream)."""
    i, j = torch.arange(nq, device=device)[:, None], torch.arange(nk, device=device)[None, :]
    newest = i if causal else torch.full_like(i, nk - 1)
    return (j <= newest) & (j > newest - local)


def select_blocks(probs: torch.Tensor, top_k: int, top_p: float,
                  local: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query block, the key blocks that hold mass ``top_p``, at least one and at most ``top_k``
    (plus, always, the blocks marked in ``local`` ``[nq, nk]``): their indices ascending in ``lut``
    ``[..., nq, min(top_k + local blocks, nk)]`` (int32; unused slots repeat the last) and their number
    in ``counts`` ``[..., nq]`` (int32). Blocks of zero mass (the future, when causal) are never kept."""
    if top_k < 1 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_k must be ≥ 1 and top_p in (0, 1], got top_k={top_k}, top_p={top_p}")
    nk = probs.shape[-1]
    n_local = torch.zeros(probs.shape[-2], dtype=torch.long, device=probs.device) if local is None else local.sum(-1)
    width = min(top_k + int(n_local.max()), nk)
    priority = probs if local is None else probs + 2.0 * local  # the local blocks first, then by mass
    # only the first `width` blocks in that order can be kept, so a top-k stands in for a full sort
    chosen = priority.topk(width, -1, sorted=True).indices
    mass = probs.gather(-1, chosen)
    before = mass.cumsum(-1) - mass  # the mass of the blocks ahead of each in the order
    needed = (before < top_p).sum(-1)  # the shortest prefix holding top_p (capped at width)
    counts = needed.maximum(n_local.clamp_min(1)).minimum(n_local + top_k).clamp_max(width)
    counts = counts.minimum((mass > 0).sum(-1).clamp_min(1).maximum(n_local))
    slot = torch.arange(width, device=probs.device)
    chosen = torch.where(slot < counts[..., None], chosen, nk)  # unused slots sort last ...
    lut = chosen.sort(-1).values
    last = lut.gather(-1, (counts - 1)[..., None].long())
    lut = torch.where(slot < counts[..., None], lut, last)  # ... and then repeat the last kept block
    return lut.to(torch.int32).contiguous(), counts.to(torch.int32).contiguous()


def block_mask(lut: torch.Tensor, nk: int) -> torch.Tensor:
    """The kept blocks as a boolean ``[..., nq, nk]`` mask (a table's unused slots repeat a kept block)."""
    mask = torch.zeros(*lut.shape[:-1], nk, dtype=torch.bool, device=lut.device)
    return mask.scatter(-1, lut.long(), True)
