"""The tensor trie (kernels/trie.py) against the pure-Python reference ``naive_allowed``: masks on
random grammars with odd vocabularies (dense and CSR levels), constrained decoding that never
leaves the grammar and reaches all of it, dead streams, and input errors."""

import random

import pytest
import torch

from kernels.trie import advance, allowed_mask, build_trie, constrained_step, decode, naive_allowed


def random_grammar(vocab: int, eos: int, n: int, seed: int) -> list[list[int]]:
    """Sequences of length 1–9 with shared prefixes, sequences that are prefixes of others, and
    duplicates; no eos inside."""
    rng = random.Random(seed)
    tokens = [t for t in range(vocab) if t != eos]
    seqs = [[rng.choice(tokens) for _ in range(rng.randint(1, 9))] for _ in range(3)]
    while len(seqs) < n:
        base = rng.choice(seqs)
        kind = rng.random()
        if kind < 0.15:  # a proper prefix of an existing sequence
            if len(base) > 1:
                seqs.append(base[:rng.randint(1, len(base) - 1)])
        elif kind < 0.2:  # a duplicate
            seqs.append(list(base))
        else:  # share a prefix, then branch off
            head = base[:rng.randint(0, len(base))]
            tail = [rng.choice(tokens) for _ in range(rng.randint(1 if not head else 0, 9 - len(head)))]
            if head + tail:
                seqs.append(head + tail)
    return seqs


def random_prefixes(seqs: list[list[int]], vocab: int, eos: int, n: int, seed: int) -> list[list[int]]:
    """Valid prefixes of every depth (with eos and trailing eos after a full sequence), valid
    prefixes plus a random token (mostly invalid), and random token strings."""
    rng = random.Random(seed)
    out: list[list[int]] = [[]]
    while len(out) < n:
        s = rng.choice(seqs) + [eos] * rng.randint(1, 3)
        prefix = s[:rng.randint(0, len(s))]
        kind = rng.random()
        if kind < 0.6:
            out.append(prefix)
        elif kind < 0.85:
            out.append(prefix + [rng.randrange(vocab)])
        else:
            out.append([rng.randrange(vocab) for _ in range(rng.randint(1, 6))])
    return out


def walk(trie, prefixes: list[list[int]]) -> torch.Tensor:
    """The node after each prefix, advancing the whole batch one position at a time."""
    length = max(len(p) for p in prefixes)
    tokens = torch.tensor([p + [0] * (length - len(p)) for p in prefixes], dtype=torch.long)
    lengths = torch.tensor([len(p) for p in prefixes])
    nodes = torch.zeros(len(prefixes), dtype=torch.long)
    for t in range(length):
        nodes = torch.where(t < lengths, advance(trie, nodes, tokens[:, t]), nodes)
    return nodes


def as_sets(mask: torch.Tensor) -> list[set[int]]:
    return [set(row.nonzero().flatten().tolist()) for row in mask]


@pytest.mark.parametrize("vocab,eos", [(23, 7), (37, 36), (37, 0)], ids=["V23-eos7", "V37-eos36", "V37-eos0"])
@pytest.mark.parametrize("dense_levels", [0, 1, 2, 3, 50], ids=lambda d: f"dense{d}")
def test_mask_matches_naive(vocab, eos, dense_levels):
    seqs = random_grammar(vocab, eos, 120, seed=vocab + eos)
    trie = build_trie(seqs, vocab, eos, dense_levels=dense_levels)
    prefixes = random_prefixes(seqs, vocab, eos, 600, seed=dense_levels)
    nodes = walk(trie, prefixes)
    expected = [naive_allowed(seqs, p, eos) for p in prefixes]
    assert as_sets(allowed_mask(trie, nodes)) == expected
    assert ((nodes < 0) == torch.tensor([not e for e in expected])).all(), "dead exactly when nothing allowed"
    live = nodes[nodes >= 0]
    assert (live < trie.n_dense).any() or trie.n_dense == 0
    assert (live >= trie.n_dense).any() or dense_levels == 50, "CSR levels exercised"


def test_layout_breadth_first():
    vocab, eos = 23, 7
    seqs = random_grammar(vocab, eos, 80, seed=3)
    trie = build_trie(seqs, vocab, eos, dense_levels=2)
    level_ptr = trie.level_ptr
    assert trie.n_dense == level_ptr[2] and trie.dense.shape == (level_ptr[2], vocab)
    assert trie.row_ptr[: trie.n_dense + 1].eq(0).all(), "dense nodes have empty CSR rows"
    assert trie.n_nodes == level_ptr[-1]
    assert len(level_ptr) == max(map(len, seqs)) + 3  # root, one level per token, eos terminals
    # every edge goes one level down (except terminal self-loops); the level of a prefix is its length
    level = torch.bucketize(torch.arange(trie.n_nodes), torch.tensor(level_ptr[1:]), right=True)
    parent = torch.repeat_interleave(torch.arange(trie.n_nodes), (trie.row_ptr[1:] - trie.row_ptr[:-1]).long())
    child = trie.col_child.long()
    loop = child == parent
    assert (trie.col_token[loop] == eos).all() and trie.terminal[parent[loop]].all()
    assert (level[child[~loop]] == level[parent[~loop]] + 1).all()
    unique = {tuple(s) for s in seqs}
    assert int(trie.terminal.sum()) == len(unique), "one terminal per distinct sequence"


def small_model(batch: int, vocab: int, seed: int):
    """A random 'decoder': per-stream weights, logits from the last token (V = start)."""
    gen = torch.Generator().manual_seed(seed)
    weights = torch.randn(batch, vocab + 1, vocab, generator=gen) * 3

    def step_fn(tokens: torch.Tensor) -> torch.Tensor:
        last = tokens[:, -1] if tokens.shape[1] else torch.full((batch,), vocab)
        return weights[torch.arange(batch), last]

    return step_fn


def strip(row: list[int], eos: int) -> list[int]:
    assert eos in row, "every stream ended"
    end = row.index(eos)
    assert all(t == eos for t in row[end:]), "finished streams keep emitting eos"
    return row[:end]


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
@pytest.mark.parametrize("dense_levels", [0, 2], ids=lambda d: f"dense{d}")
def test_decode_stays_in_grammar(greedy, dense_levels):
    vocab, eos, B = 37, 5, 64
    seqs = random_grammar(vocab, eos, 300, seed=11)
    trie = build_trie(seqs, vocab, eos, dense_levels=dense_levels)
    out = decode(trie, small_model(B, vocab, seed=1), B, greedy=greedy, generator=torch.Generator().manual_seed(2))
    assert out.shape[0] == B and out.shape[1] <= trie.max_len + 1
    grammar = {tuple(s) for s in seqs}
    decoded = [tuple(strip(row, eos)) for row in out.tolist()]
    assert all(d in grammar for d in decoded)
    assert len(set(decoded)) > 10, "per-stream random weights give varied outputs"


@pytest.mark.parametrize("greedy", [True, False], ids=["greedy", "sampled"])
def test_an_all_dense_trie_steps_as_the_csr_one(greedy):
    """The one-gather step of a trie with every level dense picks the same tokens, reaches the same
    nodes and gives the same log-probabilities as the CSR window of a trie dense at the root only."""
    vocab, eos, B = 37, 5, 64
    seqs = random_grammar(vocab, eos, 300, seed=12)
    csr, dense = build_trie(seqs, vocab, eos, dense_levels=1), build_trie(seqs, vocab, eos, dense_levels=50)
    assert dense.n_dense == dense.n_nodes and csr.n_dense < csr.n_nodes
    gen = torch.Generator().manual_seed(3)
    nodes = torch.zeros(B, dtype=torch.long)
    for _ in range(csr.max_len + 1):
        logits = torch.randn(B, vocab, generator=gen) * 3
        seed = int(torch.randint(0, 2**31, (1,), generator=gen))
        a = constrained_step(csr, nodes, logits, greedy, torch.Generator().manual_seed(seed))
        b = constrained_step(dense, nodes, logits, greedy, torch.Generator().manual_seed(seed))
        assert (a[0] == b[0]).all() and (a[1] == b[1]).all() and torch.equal(a[2], b[2])
        nodes = a[1]
    assert dense.terminal[nodes].all(), "every stream ended"


def test_sampling_reaches_every_sequence():
    vocab, eos, B = 23, 22, 64
    seqs = [[1], [1, 2], [1, 2, 3, 4, 5], [1, 3], [4, 4, 4, 4, 4, 4, 4, 4, 4], [4, 4, 1], [0, 21, 9], [6],
            [0, 21, 9, 9, 9, 8]]
    trie = build_trie(seqs, vocab, eos, dense_levels=1)
    gen = torch.Generator().manual_seed(0)
    seen: set[tuple[int, ...]] = set()
    for _ in range(8):
        out = decode(trie, lambda t: torch.randn(B, vocab, generator=gen), B, greedy=False, generator=gen)
        seen |= {tuple(strip(row, eos)) for row in out.tolist()}
    assert seen == {tuple(s) for s in seqs}


def test_step_logprobs_and_terminal():
    vocab, eos = 23, 0
    trie = build_trie([[3], [3, 4], [5, 6, 7]], vocab, eos)
    nodes = walk(trie, [[], [3], [3, 4, 0], [5, 6]])
    logits = torch.randn(4, vocab)
    tokens, next_nodes, logprobs = constrained_step(trie, nodes, logits)
    assert tokens[2] == eos and next_nodes[2] == nodes[2] and trie.terminal[nodes[2]], "terminal loops on eos"
    assert tokens[3] == 7 and logprobs[3] == 0 and logprobs[2] == 0, "forced choices have log-prob 0"
    allowed = logits[1, [eos, 4]]
    assert tokens[1] == [eos, 4][int(allowed.argmax())]
    assert torch.allclose(logprobs[1], allowed.log_softmax(0).max())
    assert (next_nodes == advance(trie, nodes, tokens)).all() and (next_nodes >= 0).all()


def test_advance_disallowed_is_dead():
    vocab, eos = 23, 7
    for dense_levels in (0, 1, 5):
        trie = build_trie([[1, 2, 3], [1, 4]], vocab, eos, dense_levels=dense_levels)
        nodes = walk(trie, [[], [1], [1, 2], [1, 2, 3]])
        bad = torch.tensor([2, 3, 4, 3])  # none of these are allowed
        assert (advance(trie, nodes, bad) == -1).all()
        assert (advance(trie, nodes, torch.tensor([-1, vocab, 99, -5])) == -1).all(), "out of vocabulary"
        edges = build_trie([[0], [vocab - 1, 1]], vocab, eos, dense_levels=dense_levels)  # clamps would alias
        root = torch.zeros(3, dtype=torch.long)
        assert (advance(edges, root, torch.tensor([-1, vocab, 2 * vocab])) == -1).all()
        assert (advance(edges, root, torch.tensor([0, vocab - 1, 1])) >= 0).tolist() == [True, True, False]
        dead = torch.full((3,), -1)
        assert (advance(trie, dead, torch.tensor([1, eos, 2])) == -1).all(), "dead stays dead"
        assert not allowed_mask(trie, dead).any()


def test_to_device_and_empty_sequence():
    trie = build_trie([[], [2, 1]], 5, 4).to("cpu")
    assert trie.device == torch.device("cpu") and trie.row_ptr.device.type == "cpu"
    assert as_sets(allowed_mask(trie, torch.zeros(1, dtype=torch.long))) == [{2, 4}]
    with pytest.raises(ValueError, match="nodes must be"):
        allowed_mask(trie, torch.zeros(2, 1, dtype=torch.long))
    with pytest.raises(ValueError, match=r"logits must be \[B, V\]"):
        constrained_step(trie, torch.zeros(2, dtype=torch.long), torch.zeros(2, 4))


@pytest.mark.parametrize("seqs,kwargs,message", [
    ([], {}, "sequences is empty"),
    ([[1, 2], [3, 23]], {}, r"sequences\[1\]\[1\] = 23 is outside the vocabulary \[0, 23\)"),
    ([[1, -2]], {}, r"sequences\[0\]\[1\] = -2"),
    ([[1, 2], [4, 7, 1]], {}, r"sequences\[1\]\[1\] is eos \(7\)"),
    ([[1]], {"eos": 23}, "eos must be in"),
    ([[1]], {"dense_levels": -1}, "dense_levels must be"),
], ids=["empty", "too-big", "negative", "eos-inside", "bad-eos", "bad-dense"])
def test_build_errors(seqs, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_trie(seqs, 23, **{"eos": 7, **kwargs})


def test_caption_sized_grammar():
    """~5,700 sequences of length ≤ 12 over 20 tokens, as the captioner uses: all states' masks
    agree with a dict trie built here."""
    rng = random.Random(0)
    vocab, eos = 20, 19
    seqs = list({tuple(rng.randrange(6) * 3 % 19 if i < 2 else rng.randrange(19) for i in range(rng.randint(1, 12)))
                 for _ in range(6000)})
    trie = build_trie(seqs, vocab, eos)
    children: dict[tuple[int, ...], set[int]] = {}
    for s in seqs:
        for i in range(len(s)):
            children.setdefault(s[:i], set()).add(s[i])
        children.setdefault(s, set()).add(eos)
    prefixes = [list(p) for p in children]
    expected = torch.zeros(len(prefixes), vocab, dtype=torch.bool)
    for i, p in enumerate(prefixes):
        expected[i, list(children[tuple(p)])] = True
    assert torch.equal(allowed_mask(trie, walk(trie, prefixes)), expected)
