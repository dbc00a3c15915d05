"""Which key blocks each query block attends to: hybrid top-k ∪ top-p over mean-pooled blocks.

After SpargeAttention2 (Zhang et al. 2026): pool each block of queries and of keys to its mean, take the
softmax of the pooled scores, and keep for each query block the key blocks that hold probability mass
``top_p`` (the shortest prefix of the blocks sorted by mass), at least one and at most ``top_k``: top-p
alone keeps too few blocks where one block dominates and too many where the row is flat; the cap and
the floor bound both.
"""

from __future__ import annotations

import torch


def pooled_block_probs(q: torch.Tensor, k: torch.Tensor, block: int, causal: bool, scale: float) -> torch.Tensor:
    """q ``[B, H, Tq, D]``, k ``[B, H, Tk, D]`` → ``[B, H, ⌈Tq/block⌉, ⌈Tk/block⌉]`` softmax of the mean-pooled
    block scores (fp32); with ``causal`` (Tq = Tk) the key blocks after a query block get 0."""
    def pool(x: torch.Tensor) -> torch.Tensor:
        B, H, T, D = x.shape
        n = -(-T // block)
        padded = torch.nn.functional.pad(x.float(), (0, 0, 0, n * block - T)).view(B, H, n, block, D)
        sizes = torch.full((n,), block, device=x.device, dtype=torch.float32)
        sizes[-1] = T - (n - 1) * block
        return padded.sum(3) / sizes[:, None]

    scores = pool(q) @ pool(k).transpose(-1, -2) * scale
    if causal:
        nq, nk = scores.shape[-2:]
        future = torch.ones(nq, nk, dtype=torch.bool, device=q.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
    return scores.softmax(-1)


def select_blocks(probs: torch.Tensor, top_k: int, top_p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per query block, the key blocks that hold mass ``top_p``, at least one and at most ``top_k``:
    their indices ascending in ``lut`` ``[..., nq, min(top_k, nk)]`` (int32; unused slots repeat the
    last) and their number in ``counts`` ``[..., nq]`` (int32). Blocks of zero mass (the future, when
    causal) are never kept."""
    if top_k < 1 or not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_k must be ≥ 1 and top_p in (0, 1], got top_k={top_k}, top_p={top_p}")
    nk = probs.shape[-1]
    width = min(top_k, nk)
    mass, order = probs.sort(-1, descending=True)
    before = mass.cumsum(-1) - mass  # the mass of the blocks ahead of each in the order
    needed = (before < top_p).sum(-1)  # the shortest prefix holding top_p
    counts = needed.clamp(1, width).minimum((mass > 0).sum(-1).clamp_min(1))
    chosen = order[..., :width]
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
