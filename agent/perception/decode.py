"""Caption decoding constrained to a grammar: the decoder can only ever emit a valid caption.

A trie of the source's captions (``kernels/trie.py``, STATIC-style: dense tables for the first
levels, CSR rows below) masks the decoder's logits at every token, for a whole batch at once; where
no row has a choice, the decoder only advances.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agent.perception.captioner import Captioner
from agent.perception.grammar import BOS, EOS, PAD
from kernels.trie import Trie, build_trie, constrained_step

DENSE_TRIE_ENTRIES = 1 << 22  # a grammar whose trie has at most this many (node, token) pairs is one table (16 MB)


class CaptionDecoding:
    """Greedy decoding of features into captions from ``captions`` (the grammar), in the model's
    vocabulary; a caption with a word the model cannot emit is a ValueError naming the word."""

    def __init__(self, model: Captioner, captions: Sequence[str], device: torch.device | str) -> None:
        self.model = model
        sequences, vocab = [model.vocab.encode(c) for c in captions], len(model.vocab)
        trie = build_trie(sequences, vocab, EOS)
        if trie.n_nodes * vocab <= DENSE_TRIE_ENTRIES:  # every level dense: the fewest ops a token
            trie = build_trie(sequences, vocab, EOS, dense_levels=trie.max_len + 2)
        self.trie = trie.to(device)
        self._forced = _forced_tokens(self.trie)

    @torch.no_grad()
    def tokens(self, features: torch.Tensor, early_exit: bool = True) -> torch.Tensor:
        """features [N, D] → token ids [N, max_len] (each row a grammar caption, ``<eos>``, then ``<pad>``).
        ``early_exit`` stops once every row has ended, which reads the device once a token; without it
        nothing does (a CUDA graph can hold the decode), and the same ids come out."""
        dec = self.model.decoder
        n = features.shape[0]
        hidden, shared = dec.start(features), dec.shared(features)
        prev = torch.full((n,), BOS, dtype=torch.long, device=features.device)
        nodes = torch.zeros(n, dtype=torch.long, device=features.device)
        out = torch.full((n, self.model.cfg.max_len), PAD, dtype=torch.long, device=features.device)
        # reading the nodes back each token: on a CPU only (a GPU would wait once more a token; a graph cannot)
        forced = self._forced if early_exit and features.device.type == "cpu" else None
        for i in range(self.model.cfg.max_len):
            only = None if forced is None else forced[nodes]
            if only is not None and bool((only >= 0).all()):  # every row's next word is the grammar's only one
                hidden = dec.advance(hidden, prev, shared)
                prev, nodes = only, self.trie.dense[nodes, only].long()
            else:
                logits, hidden = dec.step(hidden, prev, shared)
                prev, nodes, _ = constrained_step(self.trie, nodes, logits)
            out[:, i] = prev
            if early_exit and bool((prev == EOS).all()):
                break
        # a row that ended kept emitting <eos> (its terminal node loops) while others went on: <pad> after
        # the first, so a row's ids do not depend on the batch it was decoded in
        return out.masked_fill((out == EOS).cumsum(1) > 1, PAD)

    def greedy(self, features: torch.Tensor) -> list[str]:
        """features [N, D] → N captions, each one of the grammar's."""
        return [self.model.vocab.decode(row) for row in self.tokens(features).tolist()]


def _forced_tokens(trie: Trie) -> torch.Tensor | None:
    """[nodes] the one token each node of an all-dense trie allows (−1 where there is a choice): at a
    position where every row has no choice, the decode skips the logits and the mask (on a small
    grammar most positions; CartPole's captions choose at 4 of their 10 tokens). None for a CSR trie."""
    if trie.n_dense != trie.n_nodes:
        return None
    allowed = trie.dense >= 0
    return torch.where(allowed.sum(1) == 1, allowed.int().argmax(1), -1).long()
