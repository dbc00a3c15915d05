"""How a softmax captioner reads its KV cache sparsely: a config of its own (no torch), so the CLI can
show its defaults without loading a model."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SparseRead:
    """A softmax captioner's streaming step reads only the newest ``local`` cache blocks of ``block``
    frames (what the scene is doing now) and the blocks that hold probability mass ``top_p`` of the
    block-mean scores, at least one and at most ``top_k`` (``kernels.sparse_attention``); chunked
    forwards stay dense."""

    top_k: int = 16
    top_p: float = 0.9
    block: int = 64
    local: int = 1
