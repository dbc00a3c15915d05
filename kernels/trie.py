"""Constrained decoding over a fixed set of token sequences: a trie held as tensors (STATIC).

A decoder that may only emit one of a fixed list of sequences needs, at every step and for every
stream in a batch, the set of tokens allowed after the stream's prefix, and the trie node reached
by the token it picks. Following STATIC (Su et al. 2026, "Vectorizing the Trie", arXiv 2602.22647),
the trie is flattened into tensors so one step for the whole batch is a few gathers and one scatter,
on CPU or GPU, with no Python loop over streams and no host synchronisation:

- nodes are numbered breadth-first (root 0; the nodes of level ℓ, i.e. the prefixes of length ℓ,
  are ``level_ptr[ℓ]:level_ptr[ℓ+1]``, in lexicographic order of their prefixes);
- the first ``dense_levels`` levels are dense transition rows ``[n, vocab] -> child or -1``
  (one gather gives a whole mask row);
- deeper levels are CSR: node ``s`` has out-edges ``row_ptr[s]:row_ptr[s+1]`` of
  ``(col_token, col_child)``, tokens ascending. A step reads a fixed-width window of
  ``max_degree`` edges starting at each node's ``row_ptr`` (STATIC's "speculative slice"), masks
  the slots past the node's degree, and scatters the valid tokens into the mask.

Every sequence ends with an implicit ``eos``: a node at which a sequence ends allows ``eos``, which
leads to an accepting *terminal* node (one per distinct sequence, so the terminal identifies the
sequence). A terminal node allows only ``eos`` and loops to itself, so streams that finished early
keep emitting ``eos`` and stay valid while the rest of the batch decodes.

Dead streams: :func:`advance` returns ``-1`` for a token that is not allowed (no error, no host
sync); ``-1`` allows nothing and advances to ``-1``. :func:`naive_allowed` is the pure-Python
reference the tensor path is tested against.

    >>> trie = build_trie([[3, 1], [3, 1, 4], [2]], vocab_size=5, eos=0)
    >>> nodes = torch.zeros(2, dtype=torch.long)                    # two streams at the root
    >>> allowed_mask(trie, nodes)[0].nonzero().flatten().tolist()
    [2, 3]
    >>> tokens, nodes, logprobs = constrained_step(trie, nodes, torch.randn(2, 5))
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

_INT32_MAX = 2**31 - 1


@dataclass(frozen=True)
class Trie:
    """A token trie as tensors; build it with :func:`build_trie`, move it with :meth:`to`.

    Attributes:
        vocab_size: V, the number of token ids (``0..V-1``).
        eos: the end-of-sequence token.
        dense_levels: how many levels were asked to be dense (more than the depth means all).
        max_len: the longest sequence's length (without ``eos``); decoding needs ``max_len + 1`` steps.
        max_degree: K, the largest out-degree of a CSR node (0 when every node is dense): the
            width of the per-step edge window.
        level_ptr: node-id boundaries of the levels: level ℓ is ``level_ptr[ℓ]:level_ptr[ℓ+1]``.
        dense: ``[n_dense, V]`` int32, the child of node ``s`` after token ``v`` (or -1), for the
            nodes of the dense levels (``s < n_dense = level_ptr[dense_levels]``), row ``s`` = node ``s``.
        row_ptr: ``[n_nodes + 1]`` int32 CSR offsets (rows of dense nodes are empty).
        col_token: ``[n_edges]`` int32, each CSR edge's token (ascending within a row).
        col_child: ``[n_edges]`` int32, each CSR edge's child node.
        terminal: ``[n_nodes]`` bool, the accepting nodes (reached by ``eos``).
    """

    vocab_size: int
    eos: int
    dense_levels: int
    max_len: int
    max_degree: int
    level_ptr: tuple[int, ...]
    dense: torch.Tensor
    row_ptr: torch.Tensor
    col_token: torch.Tensor
    col_child: torch.Tensor
    terminal: torch.Tensor

    @property
    def n_nodes(self) -> int:
        """Number of nodes, terminals included."""
        return self.row_ptr.numel() - 1

    @property
    def n_dense(self) -> int:
        """Number of nodes stored as dense rows (the first ``dense_levels`` levels)."""
        return self.dense.shape[0]

    @property
    def device(self) -> torch.device:
        """The device the tensors live on."""
        return self.row_ptr.device

    def to(self, device: torch.device | str) -> Trie:
        """A copy with every tensor on ``device``."""
        moved = {f.name: getattr(self, f.name).to(device) for f in dataclasses.fields(self)
                 if isinstance(getattr(self, f.name), torch.Tensor)}
        return dataclasses.replace(self, **moved)


def _validate(sequences: Sequence[Sequence[int]], vocab_size: int, eos: int, dense_levels: int) -> None:
    if vocab_size < 1:
        raise ValueError(f"vocab_size must be ≥ 1, got {vocab_size}")
    if not 0 <= eos < vocab_size:
        raise ValueError(f"eos must be in [0, {vocab_size}), got {eos}")
    if dense_levels < 0:
        raise ValueError(f"dense_levels must be ≥ 0, got {dense_levels}")
    if len(sequences) == 0:
        raise ValueError("sequences is empty: a trie needs at least one sequence")


def _find_bad_token(sequences: Sequence[Sequence[int]], vocab_size: int, eos: int) -> None:
    """Raise the ValueError naming the first bad token (only called once the fast check failed)."""
    for i, seq in enumerate(sequences):
        for j, tok in enumerate(seq):
            if tok == eos:
                raise ValueError(f"sequences[{i}][{j}] is eos ({eos}): sequences end with eos implicitly")
            if not 0 <= tok < vocab_size:
                raise ValueError(f"sequences[{i}][{j}] = {tok} is outside the vocabulary [0, {vocab_size})")


def build_trie(sequences: Sequence[Sequence[int]], vocab_size: int, eos: int, dense_levels: int = 2) -> Trie:
    """Build the tensor trie of ``sequences`` (each implicitly followed by ``eos``), on the CPU.

    Vectorized like STATIC's offline index: the rows ``seq + [eos]`` (padded with -1) are sorted
    lexicographically; a row starts a new prefix of length ℓ+1 where it first differs from the
    row above at a column ≤ ℓ, and a running count of new prefixes per level gives breadth-first
    node ids. Duplicate sequences are merged; an empty sequence makes ``eos`` allowed at the root.

    Args:
        sequences: N token sequences, each token in ``[0, vocab_size)`` and not ``eos``.
        vocab_size: V.
        eos: the end-of-sequence token id.
        dense_levels: levels stored as dense ``[n, V]`` rows (default 2, as in STATIC). Memory is
            ``4 · V · (nodes in those levels)`` bytes: with a large V keep it at 1 (or 0).

    Returns:
        The :class:`Trie` (CPU tensors; ``.to(device)`` to move).

    Raises:
        ValueError: no sequences, a token outside the vocabulary, ``eos`` inside a sequence, or a
            bad ``vocab_size`` / ``eos`` / ``dense_levels``, quoting the offending value.
    """
    _validate(sequences, vocab_size, eos, dense_levels)
    max_len = max(len(s) for s in sequences)
    W = max_len + 1  # columns: tokens, then eos, then -1 padding
    rows = torch.tensor([[*s, eos] + [-1] * (max_len - len(s)) for s in sequences], dtype=torch.long)
    body = torch.arange(W)[None, :] < torch.tensor([len(s) for s in sequences])[:, None]
    if ((rows < 0) | (rows >= vocab_size) | (rows == eos))[body].any():
        _find_bad_token(sequences, vocab_size, eos)

    order = torch.arange(len(rows))
    for c in reversed(range(W)):  # stable sorts from the last column: lexicographic order
        order = order[torch.sort(rows[order, c], stable=True).indices]
    rows = rows[order]
    differs = rows[1:] != rows[:-1]
    first_diff = torch.where(differs.any(1), differs.int().argmax(1), W)
    first_diff = torch.cat([torch.zeros(1, dtype=torch.long), first_diff])

    # column c holds the prefixes of length c + 1 (level c + 1); a row owns a new node there if it
    # has a token at c and differs from the row above at or before c
    present = rows >= 0
    new = present & (first_diff[:, None] <= torch.arange(W)[None, :])
    counts = new.sum(0)
    level_ptr = torch.cat([torch.tensor([0, 1]), 1 + counts.cumsum(0)])
    node_id = level_ptr[1:-1][None, :] + new.long().cumsum(0) - 1  # [N, W], valid where present
    parent_id = torch.cat([torch.zeros(len(rows), 1, dtype=torch.long), node_id[:, :-1]], 1)
    parents, tokens, children = parent_id[new], rows[new], node_id[new]
    n_nodes = int(level_ptr[-1])
    if n_nodes > _INT32_MAX:
        raise ValueError(f"{n_nodes} nodes do not fit int32 ids")

    terminal = torch.zeros(n_nodes, dtype=torch.bool)
    terminal[children[tokens == eos]] = True
    loops = terminal.nonzero().flatten()  # terminal --eos--> itself
    parents = torch.cat([parents, loops])
    tokens = torch.cat([tokens, torch.full_like(loops, eos)])
    children = torch.cat([children, loops])
    order = torch.sort(parents * vocab_size + tokens).indices  # CSR order: by node, then token
    parents, tokens, children = parents[order], tokens[order], children[order]

    levels = len(level_ptr) - 1
    n_dense = int(level_ptr[min(dense_levels, levels)])
    in_dense = parents < n_dense
    dense = torch.full((n_dense, vocab_size), -1, dtype=torch.int32)
    dense[parents[in_dense], tokens[in_dense]] = children[in_dense].int()
    csr = ~in_dense
    degree = torch.bincount(parents[csr], minlength=n_nodes)
    row_ptr = torch.cat([torch.zeros(1, dtype=torch.long), degree.cumsum(0)])
    return Trie(
        vocab_size=vocab_size, eos=eos, dense_levels=dense_levels, max_len=max_len,
        max_degree=int(degree.max()), level_ptr=tuple(level_ptr.tolist()),
        dense=dense, row_ptr=row_ptr.int(), col_token=tokens[csr].int(),
        col_child=children[csr].int(), terminal=terminal,
    )


def _check_nodes(trie: Trie, nodes: torch.Tensor) -> None:
    if nodes.dim() != 1:
        raise ValueError(f"nodes must be [B], got shape {tuple(nodes.shape)}")
    if nodes.device != trie.device:
        raise ValueError(f"nodes are on {nodes.device}, the trie on {trie.device}")


def _csr_window(trie: Trie, nodes: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """For each node, its CSR edges in a fixed ``[B, K]`` window: tokens (``V`` in empty slots)
    and children (-1 in empty slots). Dense and dead (-1) nodes have only empty slots."""
    K, V = trie.max_degree, trie.vocab_size
    safe = nodes.clamp_min(0)
    start = trie.row_ptr[safe].long()
    degree = torch.where(nodes >= 0, trie.row_ptr[safe + 1].long() - start, 0)
    slot = torch.arange(K, device=nodes.device)
    valid = slot[None, :] < degree[:, None]
    idx = (start[:, None] + slot[None, :]).clamp_max(max(trie.col_token.numel() - 1, 0))
    tokens = torch.where(valid, trie.col_token[idx].long(), V)
    children = torch.where(valid, trie.col_child[idx].long(), -1)
    return tokens, children


def _mask(trie: Trie, nodes: torch.Tensor, window_tokens: torch.Tensor) -> torch.Tensor:
    """``[B, V]`` allowed tokens: dense rows by gather, then the CSR window scattered in."""
    V = trie.vocab_size
    mask = torch.zeros(nodes.shape[0], V + 1, dtype=torch.bool, device=nodes.device)  # column V: empty slots
    if trie.n_dense:
        is_dense = (nodes >= 0) & (nodes < trie.n_dense)
        rows = trie.dense[nodes.clamp(0, trie.n_dense - 1)]
        mask[:, :V] = (rows >= 0) & is_dense[:, None]
    mask.scatter_(1, window_tokens, True)
    return mask[:, :V].contiguous()


def _child(trie: Trie, nodes: torch.Tensor, tokens: torch.Tensor,
           window: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """``[B]`` child after each token, or -1: a dense lookup, or the CSR window's matching slot."""
    V = trie.vocab_size
    in_vocab = (tokens >= 0) & (tokens < V)  # the dense lookup clamps tokens: others must not alias
    child = torch.full_like(nodes, -1)
    if trie.n_dense:
        is_dense = (nodes >= 0) & (nodes < trie.n_dense)
        dense_child = trie.dense[nodes.clamp(0, trie.n_dense - 1), tokens.clamp(0, V - 1)].long()
        child = torch.where(is_dense, dense_child, child)
    if trie.max_degree:
        window_tokens, window_children = window
        hit = window_tokens == tokens[:, None]
        child = torch.maximum(child, torch.where(hit, window_children, -1).amax(1))
    return torch.where(in_vocab, child, -1)


def allowed_mask(trie: Trie, nodes: torch.Tensor) -> torch.Tensor:
    """The tokens allowed at each node, for a batch of streams.

    Args:
        trie: from :func:`build_trie`, on ``nodes``' device.
        nodes: ``[B]`` long node ids; ``-1`` (a dead stream) allows nothing.

    Returns:
        ``[B, V]`` bool, True where the token is allowed. Cost O(B · (V + max_degree)).
    """
    _check_nodes(trie, nodes)
    return _mask(trie, nodes, _csr_window(trie, nodes)[0])


def advance(trie: Trie, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """The node each stream reaches by emitting its token.

    Args:
        trie: from :func:`build_trie`, on ``nodes``' device.
        nodes: ``[B]`` long node ids (``-1`` for dead streams).
        tokens: ``[B]`` long token ids.

    Returns:
        ``[B]`` long child ids; ``-1`` where the token is not allowed (or out of the vocabulary, or
        the stream was already dead). No error is raised, so a step never synchronises with the host.
    """
    _check_nodes(trie, nodes)
    if tokens.shape != nodes.shape:
        raise ValueError(f"tokens must have nodes' shape {tuple(nodes.shape)}, got {tuple(tokens.shape)}")
    return _child(trie, nodes, tokens, _csr_window(trie, nodes))


def constrained_step(
    trie: Trie, nodes: torch.Tensor, logits: torch.Tensor, greedy: bool = True,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One decoding step for a batch: mask the logits to the allowed tokens, pick one, advance.

    The CSR window is read once and serves both the mask and the next node; a trie built with every
    level dense (a small grammar) takes one row gather instead (a few ops a step, not ~40: on a CPU
    the ops' overhead, not their arithmetic, is a small batch's decode).

    Args:
        trie: from :func:`build_trie`, on the logits' device.
        nodes: ``[B]`` long, live node ids (≥ 0; a dead stream has no allowed token and would get
            NaN log-probabilities). Terminal nodes allow only ``eos`` and stay where they are.
        logits: ``[B, V]`` unnormalised scores (any float dtype; computed in fp32).
        greedy: argmax if True, else sample from the masked softmax.
        generator: random generator for sampling (on the logits' device).

    Returns:
        tokens ``[B]`` long, next_nodes ``[B]`` long, and logprobs ``[B]`` fp32: each token's
        log-probability under the masked, renormalised distribution it was picked from (0 when
        the choice was forced, e.g. ``eos`` at a terminal node).
    """
    _check_nodes(trie, nodes)
    if logits.shape != (nodes.shape[0], trie.vocab_size):
        raise ValueError(f"logits must be [B, V] = {(nodes.shape[0], trie.vocab_size)}, "
                         f"got {tuple(logits.shape)}")
    if trie.n_dense == trie.n_nodes:  # every node a dense row: one gather gives mask and children
        rows = torch.where(nodes[:, None] >= 0, trie.dense[nodes.clamp_min(0)], -1)  # [B, V]; dead: nothing
        masked = logits.float().masked_fill(rows < 0, -torch.inf)
    else:
        window = _csr_window(trie, nodes)
        masked = logits.float().masked_fill(~_mask(trie, nodes, window[0]), -torch.inf)
    logprobs = masked.log_softmax(-1)
    if greedy:
        tokens = masked.argmax(-1)
    else:
        tokens = torch.multinomial(logprobs.exp(), 1, generator=generator).squeeze(1)
    if trie.n_dense == trie.n_nodes:
        children = rows.gather(1, tokens[:, None]).squeeze(1).long()
    else:
        children = _child(trie, nodes, tokens, window)
    return tokens, children, logprobs.gather(1, tokens[:, None]).squeeze(1)


def decode(
    trie: Trie, step_fn: Callable[[torch.Tensor], torch.Tensor], batch: int, max_len: int | None = None,
    greedy: bool = True, generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Decode ``batch`` streams from the root until every stream has emitted ``eos``.

    Args:
        trie: from :func:`build_trie`, on the device to decode on.
        step_fn: maps the tokens so far, ``[B, t]`` long (t = 0 at the first step), to logits ``[B, V]``.
        batch: B.
        max_len: at most this many steps; default ``trie.max_len + 1``, enough for every stream to
            end. With fewer, rows may be cut before their ``eos``.
        greedy, generator: as in :func:`constrained_step`.

    Returns:
        ``[B, L]`` long tokens, ``L ≤ max_len``: each row is one of the sequences, then ``eos``
        repeated to the batch's longest. Checks "all done" once per step (a host sync).
    """
    max_len = trie.max_len + 1 if max_len is None else max_len
    nodes = torch.zeros(batch, dtype=torch.long, device=trie.device)
    out = torch.empty(batch, 0, dtype=torch.long, device=trie.device)
    for _ in range(max_len):
        tokens, nodes, _ = constrained_step(trie, nodes, step_fn(out), greedy, generator)
        out = torch.cat([out, tokens[:, None]], 1)
        if bool((tokens == trie.eos).all()):
            break
    return out


def naive_allowed(sequences: Sequence[Sequence[int]], prefix: Sequence[int], eos: int) -> set[int]:
    """Reference: the tokens allowed after ``prefix``, by scanning every sequence (pure Python).

    A sequence ``s`` allows ``s[len(prefix)]`` when ``prefix`` is a proper prefix of it, and
    ``eos`` when ``prefix`` is ``s`` followed by zero or more ``eos``. An impossible prefix allows
    nothing.
    """
    prefix = list(prefix)
    allowed = set()
    for s in sequences:
        s = list(s)
        n = len(s)
        if prefix[:n] != s[:len(prefix)]:
            continue
        if len(prefix) < n:
            allowed.add(s[len(prefix)])
        elif all(t == eos for t in prefix[n:]):
            allowed.add(eos)
    return allowed


__all__ = ["Trie", "build_trie", "allowed_mask", "advance", "constrained_step", "decode", "naive_allowed"]
