"""The captioner: streaming steps equal one sequence pass, and decoding never leaves the grammar."""

import numpy as np
import pytest
import torch

from agent.perception.captioner import Captioner, CaptionerConfig, SparseRead
from agent.perception.decode import CaptionDecoding
from agent.perception.grammar import BOS
from envs.synthetic import all_captions

SMALL = CaptionerConfig(frame_size=32, channels=(8, 16), d_model=32, n_layers=2, n_heads=2, head_dim=16)


def _frames(b: int, t: int, size: int = 32) -> torch.Tensor:
    return torch.as_tensor(np.random.default_rng(0).integers(0, 255, (b, t, size, size, 3), dtype=np.uint8))


def _sequence_and_steps(model: Captioner, frames: torch.Tensor):
    """Features and final state from one sequence pass and from frame-by-frame steps."""
    with torch.no_grad():
        feats, state = model(frames, model.initial_state(frames.shape[0]))
        s = model.initial_state(frames.shape[0])
        steps = []
        for t in range(frames.shape[1]):
            f, s = model.step(frames[:, t], s)
            steps.append(f)
    return feats, state, torch.stack(steps, 1), s


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a - b).pow(2).mean().sqrt() / b.pow(2).mean().sqrt()).item()


def test_streaming_steps_equal_one_sequence_pass():
    torch.manual_seed(0)
    feats, state, stepped, s = _sequence_and_steps(Captioner(SMALL).eval(), _frames(3, 11))
    assert _rel(stepped, feats) < 1e-4
    for a, b in zip(state.layers, s.layers):
        assert torch.allclose(a, b, atol=1e-5)


def test_chunks_with_carried_state_equal_one_pass():
    torch.manual_seed(1)
    model = Captioner(SMALL).eval()
    frames = _frames(2, 20)
    with torch.no_grad():
        whole, _ = model(frames, model.initial_state(2))
        first, s = model(frames[:, :7], model.initial_state(2))
        second, _ = model(frames[:, 7:], s)
    assert _rel(torch.cat([first, second], 1), whole) < 1e-5


def test_teacher_forcing_gives_the_token_by_token_logits_and_gradients():
    """The fused GRU of training computes what the cell gives stepped a token at a time (greedy decoding)."""
    torch.manual_seed(2)
    decoder = Captioner(SMALL).decoder
    feature = torch.randn(5, SMALL.d_model, requires_grad=True)
    tokens = torch.randint(1, SMALL.vocab_size, (5, 7))
    hidden, prev, stepped = decoder.start(feature), torch.full((5,), BOS), []
    shared = decoder.shared(feature)
    for i in range(tokens.shape[1]):
        logits, hidden = decoder.step(hidden, prev, shared)
        stepped.append(logits)
        prev = tokens[:, i]
    stepped = torch.stack(stepped, 1)
    forced = decoder(feature, tokens)
    assert _rel(forced, stepped) < 1e-5
    weights = [feature, decoder.cell.weight_hh, decoder.embed.weight]
    for a, b in zip(torch.autograd.grad(forced.sin().sum(), weights), torch.autograd.grad(stepped.sin().sum(), weights)):
        assert _rel(a, b) < 1e-5


def test_random_weights_never_leave_the_grammar():
    grammar = set(all_captions())
    for seed in range(3):
        torch.manual_seed(seed)
        model = Captioner(SMALL).eval()
        decoding = CaptionDecoding(model, sorted(grammar), "cpu")
        captions = decoding.greedy(torch.randn(256, SMALL.d_model) * 3)
        assert all(c in grammar for c in captions)
        assert len(set(captions)) > 1


def test_skipping_the_logits_where_the_grammar_leaves_no_choice_gives_the_same_captions():
    """The decode that only advances the GRU at positions where no row has a choice (a CPU's, with
    early exit) gives the ids of the one that scores every position (a CUDA graph's), on the CartPole
    grammar (choices at 4 of its 10 tokens) and the synthetic one."""
    from dataclasses import replace

    from agent.perception.grammar import Vocab
    from envs.env_captions import env_grammar

    for captions in (list(env_grammar("CartPole-v1")), all_captions()):
        torch.manual_seed(1)
        model = Captioner(replace(SMALL, vocab=Vocab.for_captions(captions).words)).eval()
        decoding = CaptionDecoding(model, captions, "cpu")
        assert (decoding._forced >= 0).any()  # positions without a choice exist, so the skip is taken
        features = torch.randn(300, SMALL.d_model) * 3
        skipping, scoring = decoding.tokens(features), decoding.tokens(features, early_exit=False)
        assert torch.equal(skipping, scoring)
        assert len({tuple(row) for row in skipping.tolist()}) > 2


def test_softmax_baseline_streams_like_its_sequence_pass():
    from dataclasses import replace

    torch.manual_seed(2)
    feats, _, stepped, s = _sequence_and_steps(Captioner(replace(SMALL, mixer="softmax")).eval(), _frames(2, 9))
    assert _rel(stepped, feats) < 1e-4
    assert s.layers[0][0].shape[2] == 9  # the KV cache holds every frame


def test_a_preallocated_kv_cache_steps_like_a_growing_one_and_refuses_to_overflow():
    """The fair baseline's cache (buffers allocated once, written in place) gives the features the
    concatenated cache gives, frame after frame, for tiled streams too."""
    from dataclasses import replace

    import pytest

    torch.manual_seed(3)
    model = Captioner(replace(SMALL, mixer="softmax")).eval()
    frames = _frames(2, 11)
    with torch.no_grad():
        _, grown = model(frames[:, :5], model.initial_state(2))
        tile = torch.tensor([0, 1, 1])
        fixed = grown.preallocated(9).select(tile)
        grown = grown.select(tile)
        for t in range(5, 9):
            a, grown = model.step(frames[tile, t], grown)
            b, fixed = model.step(frames[tile, t], fixed)
            assert _rel(b, a) < 1e-5
        assert fixed.layers[0].length == 9 and fixed.layers[0].keys.shape[2] == 9
        with pytest.raises(ValueError, match="KV cache is full"):
            model.step(frames[tile, 9], fixed)


def test_our_state_stays_flat_while_the_kv_cache_grows():
    from launch.bench.caption import speed_along_stream
    from launch.bench_cmd import CHECKPOINTS

    ours = speed_along_stream(CHECKPOINTS / "captioner.pt", (400, 900), timed=20)
    softmax = speed_along_stream(CHECKPOINTS / "captioner-softmax.pt", (400, 900), timed=20)
    sparse = speed_along_stream(CHECKPOINTS / "captioner-softmax.pt", (400, 900), timed=20,
                                sparse=SparseRead(top_k=2, top_p=0.5, block=64))
    assert ours[0]["state_mb"] == ours[1]["state_mb"]
    assert softmax[1]["state_mb"] > 2 * softmax[0]["state_mb"]
    assert sparse[1]["state_mb"] > softmax[1]["state_mb"]  # the same cache and its block sums
    assert all(0 <= r["exact"] <= 1 and r["fps"] > 0 for r in ours + softmax + sparse)


def test_with_timing_steps_and_chunks_equal_one_pass_and_the_gaps_change_the_features():
    """The gaps a camera reports reach the features the same way streaming, in chunks and in one pass."""
    from dataclasses import replace

    torch.manual_seed(2)
    model = Captioner(replace(SMALL, timing=5)).eval()
    for emb in (model.timing.step, model.timing.span):
        torch.nn.init.normal_(emb.weight)
    frames = _frames(2, 13)
    gaps = torch.as_tensor(np.random.default_rng(3).integers(0, 7, (2, 13)))  # past the limit too: clamped
    with torch.no_grad():
        whole, _ = model(frames, model.initial_state(2), gaps)
        first, s = model(frames[:, :6], model.initial_state(2), gaps[:, :6])
        second, _ = model(frames[:, 6:], s, gaps[:, 6:])
        s, stepped = model.initial_state(2), []
        for t in range(13):
            f, s = model.step(frames[:, t], s, gaps[:, t])
            stepped.append(f)
        regular, _ = model(frames, model.initial_state(2))
    assert _rel(torch.cat([first, second], 1), whole) < 1e-5
    assert _rel(torch.stack(stepped, 1), whole) < 1e-4
    assert _rel(regular, whole) > 1e-2  # the same frames with other gaps read differently


def test_a_timing_embedding_that_starts_at_zero_keeps_a_checkpoints_features():
    """``--init`` adds timing to a model trained without it: until trained, it captions as before."""
    from dataclasses import replace

    torch.manual_seed(4)
    plain = Captioner(SMALL).eval()
    timed = Captioner(replace(SMALL, timing=5)).eval()
    missing, unexpected = timed.load_state_dict(plain.state_dict(), strict=False)
    assert all(k.startswith("timing.") for k in missing) and missing and not unexpected
    frames = _frames(2, 9)
    gaps = torch.as_tensor(np.random.default_rng(5).integers(0, 6, (2, 9)))
    with torch.no_grad():
        a, _ = plain(frames, plain.initial_state(2))
        b, _ = timed(frames, timed.initial_state(2), gaps)
    assert torch.allclose(a, b, atol=1e-6)


def test_a_sparse_read_keeping_every_block_is_the_dense_step_and_a_tight_one_differs():
    """A softmax captioner stepping over a preallocated cache with block sums: keeping all blocks gives
    the dense step's features; keeping one block of eight gives others; the block sums are the keys'."""
    torch.manual_seed(0)
    model = Captioner(CaptionerConfig(mixer="softmax", frame_size=16, channels=(8, 8), d_model=32, n_heads=2,
                                      head_dim=16)).eval()
    frames = torch.randint(0, 256, (2, 130, 16, 16, 3), dtype=torch.uint8)
    with torch.no_grad():
        _, state = model(frames[:, :120], model.initial_state(2))
        outs, ends = {}, {}
        for name, read in (("dense", None), ("all", SparseRead(top_k=16, top_p=1.0, block=16)),
                           ("one", SparseRead(top_k=1, top_p=0.1, block=16))):
            model.read_sparsely(read)
            st = state.preallocated(140, block=read.block if read else 0)
            feats = []
            for t in range(120, 130):
                f, st = model.step(frames[:, t], st)
                feats.append(f)
            outs[name], ends[name] = torch.stack(feats, 1), st
        assert torch.allclose(outs["all"], outs["dense"], atol=1e-5)
        assert (outs["one"] - outs["dense"]).abs().max() > 1e-3
        cache = ends["all"].layers[0]
        means = cache.key_means()
        assert means.shape[2] == 9  # 130 frames: 8 full blocks and 2 frames
        assert torch.allclose(means[:, :, 7], cache.keys[:, :, 112:128].mean(2), atol=1e-5)
        assert torch.allclose(means[:, :, 8], cache.keys[:, :, 128:130].mean(2), atol=1e-5)
        model.read_sparsely(SparseRead(top_k=16, top_p=1.0, block=16))  # under bf16 autocast, as --bf16 serves:
        st = state.preallocated(140, block=16)  # the fp32 cache takes the step's bf16 keys
        with torch.autocast("cpu", torch.bfloat16):
            for t in range(120, 130):
                _, st = model.step(frames[:, t], st)
        cache = st.layers[0]
        assert cache.key_sums.dtype == torch.float32
        assert torch.allclose(cache.key_means()[:, :, 8], cache.keys[:, :, 128:130].mean(2), atol=1e-5)
    with pytest.raises(ValueError, match="only a softmax captioner"):
        Captioner(CaptionerConfig(frame_size=16, channels=(8, 8))).read_sparsely(SparseRead())


def test_folding_batch_norm_and_the_input_scaling_keeps_the_features():
    """fold_batch_norm folds BatchNorm and the input scaling into the convs, so the encoder reads raw
    uint8 frames (centred) and differences: the features of a sequence pass and of steps are the trained
    model's, the borders (where the zero padding meets bright pixels) included."""
    import copy

    torch.manual_seed(4)
    model = Captioner(SMALL).eval()
    for m in model.encoder.modules():  # statistics as training leaves them, not the identity
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    folded = copy.deepcopy(model)
    folded.encoder.fold_batch_norm()
    assert folded.encoder.raw_input
    frames = _frames(2, 7)
    frames[:, :, 0, :] = 255  # bright first rows and columns: the padding's border matters most there
    frames[:, :, :, 0] = 255
    want, want_state, want_steps, _ = _sequence_and_steps(model, frames)
    got, got_state, got_steps, _ = _sequence_and_steps(folded, frames)
    assert _rel(got, want) < 1e-5 and _rel(got_steps, want_steps) < 1e-5
    assert torch.equal(got_state.frames, want_state.frames)
