"""Block-sparse attention: the hybrid top-k ∪ top-p block choice, and the Triton kernel (CPU
interpreter) against dense attention restricted to the same blocks, forward and backward, odd shapes."""

import pytest
import torch

from kernels import key_blocks, sparse_attention
from kernels.sparse_attention import block_mask, block_sparse_attention_reference
from kernels.sparse_attention.mask import block_probs, local_blocks, select_blocks
from kernels.sparse_attention.select_triton import select_blocks_triton

FP32_TOL = 1e-4


def rel_rmse(ref: torch.Tensor, got: torch.Tensor) -> float:
    assert torch.isfinite(got).all()
    ref, got = ref.detach(), got.detach()
    return float((got.float() - ref.float()).pow(2).mean().sqrt() / ref.float().pow(2).mean().sqrt())


def qkv(B, H, Tq, Tk, D, Dv, seed=0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(B, H, Tq, D, generator=gen)
    k = torch.randn(B, H, Tk, D, generator=gen)
    v = torch.randn(B, H, Tk, Dv, generator=gen)
    k[..., 3::7, :] *= 4  # some keys stand out, so blocks differ in mass
    return q, k, v


def test_the_kept_blocks_hold_p_at_least_one_at_most_k():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05],    # p = 0.8 is reached with two blocks
                          [0.97, 0.01, 0.01, 0.01],  # one block holds it all
                          [0.25, 0.25, 0.25, 0.25]])  # flat: top-p would take 4; k caps at 3
    lut, counts = select_blocks(probs, top_k=3, top_p=0.8)
    assert counts.tolist() == [2, 1, 3]
    assert lut[0, :2].tolist() == [0, 1] and lut[1, 0].item() == 0
    assert sorted(lut[2].tolist()) == lut[2].tolist() and len(set(lut[2].tolist())) == 3
    with pytest.raises(ValueError, match="top_k must be"):
        select_blocks(probs, top_k=0, top_p=0.8)


def test_local_blocks_are_always_kept_besides_the_chosen_ones():
    probs = torch.tensor([[0.9, 0.05, 0.03, 0.02]] * 2)  # block 0 holds the mass; the newest are 2 and 3
    local = torch.tensor([[False, False, True, True], [False, False, False, False]])
    lut, counts = select_blocks(probs, top_k=1, top_p=0.5, local=local)
    assert counts.tolist() == [3, 1]
    assert lut[0].tolist() == [0, 2, 3] and lut[1, 0].item() == 0


def test_causal_selection_never_keeps_future_blocks():
    q, k, _ = qkv(2, 3, 200, 200, 24, 24)
    lut, counts = key_blocks(q, k, top_k=4, top_p=1.0, block=16, causal=True)
    mask = block_mask(lut, 13)
    future = torch.ones(13, 13, dtype=torch.bool).triu(1)
    assert not (mask & future).any()
    assert (counts >= 1).all() and (counts <= 4).all()
    assert counts[..., 0].eq(1).all()  # the first query block can see only itself


@pytest.mark.parametrize("B, H, nq, nk, causal, local, top_k, top_p",
                         [(1, 2, 7, 13, False, 0, 3, 0.7), (2, 3, 9, 9, True, 0, 4, 0.9),
                          (1, 1, 5, 37, False, 2, 5, 0.5), (2, 2, 11, 11, True, 3, 2, 0.8),
                          (1, 2, 3, 40, False, 0, 50, 0.95), (1, 1, 33, 33, True, 1, 8, 1.0)],
                         ids=["odd", "causal", "local", "causal-local", "k-above-nk", "p1-capped"])
def test_the_triton_choice_is_the_reference_choice(B, H, nq, nk, causal, local, top_k, top_p):
    """The fused kernel (interpreter) keeps the same blocks as the PyTorch reference, in the same table."""
    gen = torch.Generator().manual_seed(nq * nk)
    q_means, k_means = torch.randn(B, H, nq, 24, generator=gen), torch.randn(B, H, nk, 24, generator=gen)
    k_means[..., ::3, :] *= 3  # some blocks stand out
    scores = q_means @ k_means.transpose(-1, -2) * 24 ** -0.5
    near = local_blocks(nq, nk, local, causal, scores.device) if local else None
    want = select_blocks(block_probs(q_means, k_means, causal, 24 ** -0.5), top_k, top_p, near)
    got = select_blocks_triton(scores, top_k, top_p, causal, local)
    assert got[0].shape == want[0].shape
    assert torch.equal(got[1], want[1]) and torch.equal(got[0], want[0])
    assert (want[1] > 1).any() and (want[1] < min(nk, top_k + local)).any(), "the test must vary the count"


def test_the_triton_choice_keeps_ties_in_index_order_up_to_k():
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0, -1.0], [2.0, 0.0, 0.0, 0.0, 0.0]])  # flat; one heavy block
    lut, counts = select_blocks_triton(scores, top_k=3, top_p=0.99)
    assert counts.tolist() == [3, 3]
    assert lut.tolist() == [[0, 1, 2], [0, 1, 2]]


@pytest.mark.parametrize("shape, causal", [((1, 2, 100, 100, 24, 40), False), ((1, 2, 100, 100, 24, 40), True),
                                           ((2, 1, 37, 130, 32, 16), False), ((2, 2, 1, 130, 24, 16), False),
                                           ((1, 2, 9, 130, 24, 16), False)],
                         ids=["B1H2T100D24Dv40", "B1H2T100D24Dv40-causal", "B2H1Tq37Tk130D32Dv16",
                              "one-query-step", "one-short-query-block"])
def test_triton_matches_the_dense_reference_on_the_same_blocks(shape, causal):
    q, k, v = qkv(*shape)
    q, k, v = (x.requires_grad_(True) for x in (q, k, v))
    lut, counts = key_blocks(q, k, top_k=3, top_p=0.7, block=16, causal=causal)
    assert (counts < -(-shape[3] // 16)).any(), "the test must skip some blocks"
    mask = block_mask(lut, -(-shape[3] // 16))
    ref = block_sparse_attention_reference(q, k, v, mask, 16, causal, shape[4] ** -0.5)
    do = torch.randn_like(ref)
    grads_ref = torch.autograd.grad(ref, (q, k, v), do)
    for backend in ("triton", "torch"):
        got = sparse_attention(q, k, v, top_k=3, top_p=0.7, block=16, causal=causal, backend=backend)
        assert rel_rmse(ref, got) <= FP32_TOL, backend
        grads = torch.autograd.grad(got, (q, k, v), do)
        for name, r, x in zip(("dq", "dk", "dv"), grads_ref, grads):
            assert rel_rmse(r, x) <= FP32_TOL, f"{backend} {name}"


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_a_view_into_a_preallocated_cache_reads_like_a_copy(backend):
    """One query over the filled part of a larger key/value buffer (a streaming cache): the same output
    as over contiguous copies, and with the block means given instead of pooled."""
    q, k, v = qkv(2, 3, 1, 300, 24, 16)
    buf_k, buf_v = torch.zeros(2, 3, 512, 24), torch.zeros(2, 3, 512, 16)
    buf_k[:, :, :300], buf_v[:, :, :300] = k, v
    view_k, view_v = buf_k[:, :, :300], buf_v[:, :, :300]
    assert not view_k.is_contiguous()
    means = torch.stack([k[:, :, i:i + 32].mean(2) for i in range(0, 300, 32)], 2)
    want = sparse_attention(q, k, v, top_k=2, top_p=0.5, block=32, backend="torch")
    got = sparse_attention(q, view_k, view_v, top_k=2, top_p=0.5, block=32, backend=backend, key_means=means)
    assert rel_rmse(want, got) <= FP32_TOL
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    assert rel_rmse(dense, want) > 1e-3  # two of ten blocks: not the dense answer


@pytest.mark.parametrize("backend", ["triton", "torch"])
def test_bf16_queries_over_an_fp32_cache_read_in_the_caches_dtype(backend):
    """A streaming step under bf16 autocast meets an fp32 cache: the queries are read in the cache's
    dtype (the Triton kernel takes one dtype) and the output comes back in the queries'."""
    q, k, v = qkv(2, 3, 1, 300, 24, 16)
    means = torch.stack([k[:, :, i:i + 32].mean(2) for i in range(0, 300, 32)], 2)
    q16 = q.bfloat16()
    got = sparse_attention(q16, k, v, top_k=2, top_p=0.5, block=32, backend=backend, key_means=means)
    want = sparse_attention(q16.float(), k, v, top_k=2, top_p=0.5, block=32, backend=backend, key_means=means)
    assert got.dtype == torch.bfloat16
    assert rel_rmse(want, got.float()) <= 1e-2


def test_keeping_every_block_is_dense_attention():
    q, k, v = qkv(1, 2, 50, 70, 16, 16)
    dense = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    for backend in ("triton", "torch"):
        assert rel_rmse(dense, sparse_attention(q, k, v, top_k=100, top_p=1.0, block=16, backend=backend)) <= FP32_TOL


def test_bad_arguments_are_named():
    q, k, v = qkv(1, 1, 20, 20, 16, 16)
    with pytest.raises(ValueError, match="block must be a power of two"):
        sparse_attention(q, k, v, top_k=2, top_p=0.9, block=24)
    with pytest.raises(ValueError, match="causal attention needs as many queries as keys"):
        sparse_attention(q[:, :, :10], k, v, top_k=2, top_p=0.9, causal=True)
    with pytest.raises(ValueError, match=r"q, k, v must be \[B, H, T, D\]"):
        sparse_attention(q[0], k, v, top_k=2, top_p=0.9)
    with pytest.raises(ValueError, match="backend must be auto, torch or triton"):
        sparse_attention(q, k, v, top_k=2, top_p=0.9, backend="cuda")
