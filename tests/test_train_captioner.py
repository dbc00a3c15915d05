"""Training the captioner learns (the loss falls) and writes a checkpoint that captions in-grammar."""

from dataclasses import replace

import numpy as np
import torch

from agent.perception.captioner import CaptionerConfig
from agent.perception.decode import CaptionDecoding
from agent.perception.live import LiveCaptioner
from agent.perception.train import TrainConfig, load_checkpoint, train_captioner
from envs.synthetic import all_captions


def test_short_training_lowers_the_loss_and_checkpoints(tmp_path):
    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16)
    cfg = TrainConfig(steps=40, streams=4, chunk=16, lr=3e-3, warmup=5, eval_every=0, eval_streams=2,
                      eval_frames=64, model=small)
    losses = []
    metrics = train_captioner(cfg, out=tmp_path / "c.pt", progress=lambda step, m: losses.append(m["loss"]))
    assert len(losses) == 40 and sum(losses[-5:]) < 0.8 * sum(losses[:5])
    assert 0.0 <= metrics["exact"] <= 1.0 and metrics["frames"] == 40 * 4 * 16
    model = load_checkpoint(tmp_path / "c.pt")
    assert model.cfg == small
    captions = CaptionDecoding(model, all_captions(), "cpu").greedy(torch.randn(8, 32))
    assert set(captions) <= set(all_captions())


def test_env_render_training_uses_the_env_grammar(tmp_path):
    from agent.perception.data import grammar
    from agent.perception.train import checkpoint_grammar

    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16)
    cfg = TrainConfig(steps=25, streams=3, chunk=16, lr=3e-3, warmup=5, eval_every=0, eval_streams=2,
                      eval_frames=32, data="env:CartPole-v1", model=small)
    losses = []
    metrics = train_captioner(cfg, out=tmp_path / "cp.pt", progress=lambda step, m: losses.append(m["loss"]))
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])
    assert set(metrics) >= {"exact", "pole", "cart"} and metrics["segments"] == 2 * 64  # every frame scored
    assert checkpoint_grammar(tmp_path / "cp.pt") == grammar("env:CartPole-v1")
    model = load_checkpoint(tmp_path / "cp.pt")
    captions = CaptionDecoding(model, grammar("env:CartPole-v1"), "cpu").greedy(torch.randn(16, 32) * 3)
    assert set(captions) <= set(grammar("env:CartPole-v1"))


def test_shipped_checkpoints_load_with_the_built_in_vocabulary():
    from agent.perception.grammar import VOCAB
    from agent.perception.live import DEFAULT_CHECKPOINT
    from agent.perception.train import checkpoint_grammar

    for path in (DEFAULT_CHECKPOINT, DEFAULT_CHECKPOINT.with_name("captioner-softmax.pt")):
        model = load_checkpoint(path)
        assert model.cfg.vocab == VOCAB and model.cfg.vocab_size == len(VOCAB)
        assert checkpoint_grammar(path) == all_captions()


def test_camera_training_from_a_checkpoint_adds_timing_and_keeps_learning(tmp_path):
    """``--init`` with ``--camera``: the start's sizes and words, a timing input added, the loss still
    falling on skipped, repeated and compressed frames, and a score through the same camera."""
    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16)
    base = TrainConfig(steps=10, streams=3, chunk=16, lr=3e-3, warmup=2, eval_every=0, eval_streams=2,
                       eval_frames=32, data="env:CartPole-v1", model=small)
    train_captioner(base, out=tmp_path / "start.pt")
    losses = []
    cfg = replace(base, steps=30, camera=True, init=str(tmp_path / "start.pt"), model=CaptionerConfig())
    metrics = train_captioner(cfg, out=tmp_path / "camera.pt", progress=lambda step, m: losses.append(m["loss"]))
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])
    assert 0 < metrics["camera_segments"] <= metrics["segments"] and 0.0 <= metrics["camera_exact"] <= 1.0
    model = load_checkpoint(tmp_path / "camera.pt")
    assert model.cfg == replace(load_checkpoint(tmp_path / "start.pt").cfg, timing=5)


def test_a_resized_projection_projects_a_uniform_map_as_before():
    """Shrinking (or growing) the frames resamples ``proj``: a feature map that is the same everywhere
    gives the same token, so what the convolutions learned still reaches the model."""
    from agent.perception.captioner import FrameTokenizer

    weight = torch.randn(32, 16 * 4 * 4)
    uniform = torch.randn(16)
    before = weight @ uniform.repeat_interleave(16)
    for side in (3, 2, 5):
        after = FrameTokenizer.resized_projection(weight, 16, side) @ uniform.repeat_interleave(side * side)
        assert torch.allclose(after, before, rtol=1e-4, atol=1e-4), side


def test_training_from_a_checkpoint_at_a_smaller_frame_size(tmp_path):
    """``--init`` with ``--frame-size``: the start's sizes but smaller frames, its convolutions carried
    over unchanged, frames made at the new size, and the loss still falling."""
    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16)
    base = TrainConfig(steps=10, streams=3, chunk=16, lr=3e-3, warmup=2, eval_every=0, eval_streams=2,
                       eval_frames=32, data="env:CartPole-v1", model=small)
    train_captioner(base, out=tmp_path / "start.pt")
    losses = []
    cfg = replace(base, steps=30, init=str(tmp_path / "start.pt"), frame_size=48)
    train_captioner(cfg, out=tmp_path / "48.pt", progress=lambda step, m: losses.append(m["loss"]))
    assert sum(losses[-5:]) < 0.8 * sum(losses[:5])
    start, shrunk = load_checkpoint(tmp_path / "start.pt"), load_checkpoint(tmp_path / "48.pt")
    assert shrunk.cfg == replace(start.cfg, frame_size=48)
    assert shrunk.encoder.proj.weight.shape[1] == 16 * 3 * 3
    live = LiveCaptioner(tmp_path / "48.pt", streams=2)
    assert live.caption_steps(np.zeros((3, 2, 64, 64, 3), np.uint8)).shape[:2] == (3, 2)  # 64-px frames shrunk


def test_a_frame_size_the_encoder_cannot_halve_is_one_clear_line(capsys):
    from conftest import one_clear_line, run_main

    one_clear_line(run_main(capsys, "train", "captioner", "--frame-size", "40", "--steps", "1"), "--frame-size")


def test_init_that_is_not_a_checkpoint_is_one_clear_line(capsys, tmp_path):
    from conftest import one_clear_line, run_main

    bad = tmp_path / "notes.txt"
    bad.write_text("hello")
    one_clear_line(run_main(capsys, "train", "captioner", "--init", str(bad), "--steps", "1"),
                   "--init: ")


def test_parallel_streams_deliver_one_batchs_chunks_through_shared_memory():
    """Workers writing into shared slots give, chunk after chunk (more chunks than slots), exactly the
    frames and captions of one batch over all the seeds, and a bad chunk length is refused."""
    import pytest

    from agent.perception.data import ParallelStreams, open_batch

    seeds = [3, 5, 8, 13, 21]
    one = open_batch("synthetic", seeds, 64)
    many = ParallelStreams("synthetic", seeds, 64, 6, workers=2, prefetch=2)
    try:
        for _ in range(5):
            want, want_truths = one.next(6)
            got, got_truths = many.next(6)
            np.testing.assert_array_equal(got, want)
            assert [[t.caption for t in s] for s in got_truths] == [[t.caption for t in s] for s in want_truths]
        with pytest.raises(ValueError, match="chunks of 6 frames"):
            many.next(7)
    finally:
        many.close()


def test_a_step_whose_gradient_is_not_finite_leaves_the_weights_and_is_counted():
    """One bad chunk must not turn every weight into NaN (a 3,000-step GPU run once ended all NaN):
    the step is skipped, the optimizer's step count stays, and the next good step trains again."""
    from agent.perception.captioner import Captioner
    from agent.perception.train_steps import make_optimizer, train_step

    torch.manual_seed(0)
    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16)
    model = Captioner(small).train()
    opt = make_optimizer(model, TrainConfig().lr, TrainConfig().weight_decay)
    frames = torch.randint(0, 256, (2, 4, small.frame_size, small.frame_size, 3), dtype=torch.uint8)
    target = torch.randint(1, len(small.vocab), (2, 4, small.max_len))
    _, state, skipped = train_step(model, opt, frames, model.initial_state(2), target)
    assert not skipped
    before = {k: p.detach().clone() for k, p in model.named_parameters()}
    poison = model.decoder.head.weight.register_hook(lambda g: g * float("nan"))
    _, state, skipped = train_step(model, opt, frames, state, target)
    poison.remove()
    assert skipped
    assert all(torch.equal(p, before[k]) for k, p in model.named_parameters())
    assert opt.state[model.decoder.head.weight]["step"].item() == 1
    _, _, skipped = train_step(model, opt, frames, state, target)
    assert not skipped and not torch.equal(model.decoder.head.weight, before["decoder.head.weight"])
    assert opt.state[model.decoder.head.weight]["step"].item() == 2


def test_a_stream_whose_state_went_nan_starts_over_and_the_others_keep_theirs():
    from agent.perception.captioner import Captioner

    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16)
    model = Captioner(small)
    frames = torch.randint(0, 256, (3, 4, small.frame_size, small.frame_size, 3), dtype=torch.uint8)
    _, state = model(frames, model.initial_state(3))
    state.layers[0][1, 0, 2, 3] = float("inf")
    state.layers[1][1, 1, 0, 0] = float("nan")
    kept = state.finite()
    for before, after in zip(state.layers, kept.layers):
        assert torch.equal(after[[0, 2]], before[[0, 2]]) and before[[0, 2]].abs().sum() > 0
        assert torch.equal(after[1], torch.zeros_like(after[1]))


def test_the_fixed_buffer_step_a_cuda_graph_replays_trains_as_the_eager_step():
    """TrainSteps' replayed step (inputs copied into buffers, the state written back into its own
    tensors, the learning rate a tensor the optimizer reads) takes the eager loop's steps exactly: the
    same losses and weights after the warm-up steps and after as many again, with a schedule and
    camera gaps. On a CPU it runs without the capture, which is all that differs on a GPU."""
    from agent.perception.captioner import Captioner
    from agent.perception.train_steps import WARMUP_STEPS, TrainSteps, make_optimizer, set_lr

    small = replace(CaptionerConfig(), channels=(8, 16, 16, 16), d_model=32, n_heads=2, head_dim=16, timing=6)
    gen = torch.Generator().manual_seed(3)
    chunks = [(torch.randint(0, 256, (2, 3, small.frame_size, small.frame_size, 3), dtype=torch.uint8, generator=gen),
               torch.randint(1, len(small.vocab), (2, 3, small.max_len), generator=gen),
               torch.randint(1, 6, (2, 3), generator=gen)) for _ in range(2 * WARMUP_STEPS + 2)]
    runs = {}
    for buffers in (False, True):
        torch.manual_seed(0)
        model = Captioner(small).train()
        opt = make_optimizer(model, 1e-3, 0.01)
        opt.param_groups[0]["lr"] = torch.tensor(1e-3)  # as a capturable optimizer holds it
        steps = TrainSteps(model, opt, model.initial_state(2), buffers=buffers)
        losses = []
        for i, (frames, target, gaps) in enumerate(chunks):
            set_lr(opt, 1e-3 * (i + 1) / (2 * len(chunks)))
            loss, skipped = steps(frames, target, gaps)
            losses.append(loss.item())
            assert not skipped
        assert abs(float(opt.param_groups[0]["lr"]) - 0.5e-3) < 1e-9  # the tensor the optimizer reads was filled
        runs[buffers] = losses, model.state_dict(), steps.state
    (eager, weights, state), (fixed, fixed_weights, fixed_state) = runs[False], runs[True]
    assert len(set(eager[WARMUP_STEPS:])) > 1  # the later steps train on and differ
    assert eager == fixed
    assert all(torch.equal(weights[k], fixed_weights[k]) for k in weights)
    assert all(torch.equal(a, b) for a, b in zip(state.layers, fixed_state.layers))
    assert torch.equal(state.frames, fixed_state.frames) and torch.equal(state.gaps, fixed_state.gaps)
