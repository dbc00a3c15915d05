"""The captioner's training step: the loss, one optimizer step, and the steps replayed as one CUDA graph.

Eager, a step of `thalamus train captioner` launches a few hundred kernels; on an H100 the loop took
30 ms a step against the step's 8 ms of GPU work (BENCHMARKS.md, issue 16: `benchmarks/train_phases.py`),
so the host, not the GPU, set the pace. ``TrainSteps`` runs the first steps eagerly (the first has no
past frames, and capture needs warmed-up kernels and cuDNN), then captures one step whole — forward,
backward, clipping, fused AdamW with its learning rate a device tensor — on fixed input and state
buffers, and replays it: the host copies a chunk in and launches one graph.

Off a GPU (and with ``graph=False``) the steps run eagerly; ``buffers=True`` there runs the same
fixed-buffer step a replay would, so the CPU tests check everything but the capture itself.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
import torch.nn.functional as F

from agent.perception.captioner import Captioner, StreamState
from agent.perception.grammar import PAD

WARMUP_STEPS = 3  # eager steps before the capture: the first (no past frames) and kernels' first runs


def caption_loss(model: Captioner, feats: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The caption cross-entropy of features [B, T, D] against token ids [B, T, L] (teacher forcing)."""
    logits = model.decoder(feats.flatten(0, 1), target.flatten(0, 1))  # [B*T, L, vocab]
    return F.cross_entropy(logits.flatten(0, 1), target.flatten(), ignore_index=PAD)


def train_step(model: Captioner, opt: torch.optim.Optimizer, frames: torch.Tensor, state: StreamState,
               target: torch.Tensor, gaps: torch.Tensor | None = None
               ) -> tuple[torch.Tensor, StreamState, torch.Tensor]:
    """One truncated-BPTT step on a chunk: frames uint8 [B, T, S, S, 3] on the model's device, target
    token ids [B, T, L]; the caption cross-entropy at every frame, clipped gradients, one optimizer
    step. Returns the loss (not read here: reading it waits for the GPU), the detached state, and
    whether the step was skipped: a gradient that is not finite leaves the weights as they are (fused
    AdamW's ``found_inf``, the flag AMP's GradScaler sets), where it would make every weight NaN."""
    feats, state = model(frames, state, gaps)
    loss = caption_loss(model, feats, target)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    skipped = ~torch.isfinite(torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0))
    opt.found_inf, opt.grad_scale = skipped.float(), None
    try:
        opt.step()
    finally:
        del opt.found_inf, opt.grad_scale
    return loss, state.detach(), skipped


def make_optimizer(model: Captioner, lr: float, weight_decay: float, capturable: bool = False
                   ) -> torch.optim.Optimizer:
    """AdamW as training uses it: fused (one kernel for every parameter; it can skip a step without
    the host reading a flag, `train_step`); ``capturable`` (CUDA) for a step captured in a graph,
    its learning rate a device tensor that `set_lr` fills."""
    if capturable:
        return torch.optim.AdamW(model.parameters(), lr=torch.tensor(lr, device=next(model.parameters()).device),
                                 weight_decay=weight_decay, fused=True, capturable=True)
    return torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay, fused=True)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Every group's learning rate to ``lr``; a device tensor is filled in place (what a graph reads)."""
    for group in opt.param_groups:
        if isinstance(group["lr"], torch.Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


class TrainSteps:
    """``steps(frames, target, gaps) → (loss, skipped)``: one truncated-BPTT step each call, the
    streams' state carried inside (each stream whose state went non-finite starts over)."""

    def __init__(self, model: Captioner, opt: torch.optim.Optimizer, state: StreamState,
                 graph: bool = False, buffers: bool = False) -> None:
        """``graph``: capture after ``WARMUP_STEPS`` eager steps (CUDA; ``opt`` made capturable, see
        `make_optimizer`); ``buffers``: the fixed-buffer step without a capture (for tests)."""
        self.model, self.opt, self.state = model, opt, state
        self.graph = graph
        self.buffers = buffers or graph
        self.calls = 0
        self._graph: torch.cuda.CUDAGraph | None = None
        self._inputs: tuple[torch.Tensor, torch.Tensor, torch.Tensor | None] | None = None
        self._outputs: tuple[torch.Tensor, torch.Tensor] | None = None
        self._side = torch.cuda.Stream() if graph else None

    def __call__(self, frames: torch.Tensor, target: torch.Tensor, gaps: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        self.calls += 1
        if not self.buffers or self.calls <= WARMUP_STEPS:
            return self._eager(frames, target, gaps)
        if self._inputs is None:
            self._inputs = (torch.empty_like(frames), torch.empty_like(target),
                            None if gaps is None else torch.empty_like(gaps))
            self.state = _owned(self.state)
        for buffer, x in zip(self._inputs, (frames, target, gaps)):
            if buffer is not None:
                buffer.copy_(x, non_blocking=True)
        if not self.graph:
            return self._body()
        if self._graph is None:
            self._capture()
        self._graph.replay()
        return self._outputs

    def _eager(self, frames: torch.Tensor, target: torch.Tensor, gaps: torch.Tensor | None
               ) -> tuple[torch.Tensor, torch.Tensor]:
        if self._side is not None:  # a graph's warm-up runs away from the stream it will be captured on
            self._side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self._side) if self._side is not None else nullcontext():
            loss, state, skipped = train_step(self.model, self.opt, frames, self.state, target, gaps)
            self.state = state.finite()
        if self._side is not None:
            torch.cuda.current_stream().wait_stream(self._side)
        return loss, skipped

    def _body(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One step on the input buffers; the new state written into the state's own tensors."""
        frames, target, gaps = self._inputs
        loss, new, skipped = train_step(self.model, self.opt, frames, self.state, target, gaps)
        new = new.finite()
        self.state.frames.copy_(new.frames)
        if new.gaps is not None:
            self.state.gaps.copy_(new.gaps)
        for mine, layer in zip(self.state.layers, new.layers):
            mine.copy_(layer)
        return loss, skipped

    def _capture(self) -> None:
        self.opt.zero_grad(set_to_none=True)  # the gradients are allocated inside the graph's pool
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            self._outputs = self._body()
        self._graph = graph


def _owned(state: StreamState) -> StreamState:
    """A copy of ``state`` in tensors of its own (a step's outputs may be views of others)."""
    if any(not isinstance(layer, torch.Tensor) for layer in state.layers):
        raise ValueError("a fixed-buffer training step needs a delta-rule captioner (a softmax cache grows)")
    return StreamState(state.frames.clone(), [layer.clone() for layer in state.layers], state.started,
                       None if state.gaps is None else state.gaps.clone())
