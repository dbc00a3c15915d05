"""Many live streams through one captioner on one device: every stream's state stays on the device, a
step takes one frame from each stream (host memory, pinned on CUDA) and hands back every stream's
caption as token ids on the host. On CUDA the step can be one CUDA-graph replay (no host round trip
per token: the decode runs to the caption's full length on the device) and run under bf16 autocast."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from agent.perception.captioner import Captioner, StreamState
from agent.perception.decode import CaptionDecoding


@dataclass
class ServeConfig:
    """How a step runs: ``bf16`` autocast (the state stays fp32), ``graph`` one captured CUDA graph a
    step (CUDA and a delta-rule model only: a softmax cache changes shape every frame), ``compile``
    the model's step through torch.compile."""

    bf16: bool = False
    graph: bool = False
    compile: bool = False

    def runnable(self, model: Captioner, device: str) -> "ServeConfig":
        """This config with the graph and the compile dropped where the shapes do not stay fixed (a
        softmax cache grows every frame) or the device is not CUDA."""
        fixed = device.startswith("cuda") and model.cfg.mixer == "delta"
        return replace(self, graph=self.graph and fixed, compile=self.compile and fixed)


class StreamServer:
    """N stream slots, one frame each a step: ``step(frames [N, S, S, 3] uint8) → tokens [N, max_len]``.
    A stream joins by taking a slot (:meth:`join`), which starts that slot's state over without touching
    the others or the captured graph; a slot whose stream left is simply ignored until it is taken."""

    def __init__(self, model: Captioner, decoding: CaptionDecoding, state: StreamState,
                 cfg: ServeConfig | None = None) -> None:
        """``state``: the N streams' state on the model's device (``model.initial_state(N)`` for new
        streams; a graph is captured after their first, eager, step)."""
        self.model, self.decoding, self.state = model, decoding, state
        self.cfg = cfg = cfg or ServeConfig()
        self.device = state.frames.device
        if cfg.graph and (self.device.type != "cuda" or model.cfg.mixer != "delta"):
            raise ValueError("a CUDA graph needs --device cuda and a delta-rule captioner (a softmax cache "
                             "grows every frame)")
        self._step = torch.compile(model.step, dynamic=False) if cfg.compile else model.step
        n, s = state.frames.shape[0], model.cfg.frame_size
        self._frame = torch.zeros(n, s, s, 3, dtype=torch.uint8, device=self.device)
        pin = self.device.type == "cuda"
        self._tokens_host = torch.zeros(n, model.cfg.max_len, dtype=torch.long, pin_memory=pin)
        self._gaps = torch.ones(n, dtype=torch.long, device=self.device)  # 0: a slot's first frame
        self._joined = False  # a join since the last step: ``_gaps`` holds zeros to reset after it
        self._graph: torch.cuda.CUDAGraph | None = None
        self._tokens: torch.Tensor | None = None

    @torch.no_grad()
    def _body(self, early_exit: bool) -> torch.Tensor:
        """One step from ``self._frame``; a delta-rule state is written in place (so a graph can replay it)."""
        state = self.state
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cfg.bf16):
            feature, new = self._step(self._frame, state, self._gaps if state.started else None)
            tokens = self.decoding.tokens(feature.float(), early_exit=early_exit)
        state.frames.copy_(new.frames)
        if new.gaps is not None:
            state.gaps.copy_(new.gaps)
        for i, layer in enumerate(new.layers):
            if isinstance(layer, torch.Tensor):
                state.layers[i].copy_(layer)
            else:
                state.layers[i] = layer
        state.started = True
        return tokens

    @torch.no_grad()
    def join(self, slots: torch.Tensor, frames: torch.Tensor) -> None:
        """New streams take ``slots`` [K]: each one's state starts over as if ``frames`` [K, S, S, 3] (what
        the next :meth:`step` gives those slots) were its first frame (its own past, no time before
        it). Only those slots are written, outside any graph."""
        if self.model.cfg.mixer != "delta":
            raise ValueError("streams can join only a delta-rule captioner's server (a softmax cache is "
                             "one length for every stream)")
        slots = torch.as_tensor(slots, device=self.device)
        state = self.state
        state.frames[slots] = torch.as_tensor(frames, device=self.device)[:, None].expand(-1, *state.frames.shape[1:])
        for layer in state.layers:
            layer[slots] = 0
        if state.gaps is not None:
            state.gaps[slots] = 0
        self._gaps[slots] = 0
        self._joined = True

    def _capture(self) -> None:
        """Capture one step as a CUDA graph, leaving the state as it was (warm-up and capture steps
        change it, so it is saved and put back)."""
        saved = [t.clone() for t in (self.state.frames, *self.state.layers)]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(2):
                self._body(early_exit=False)
        torch.cuda.current_stream().wait_stream(side)
        self._graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self._graph):
            self._tokens = self._body(early_exit=False)
        for t, s in zip((self.state.frames, *self.state.layers), saved):
            t.copy_(s)

    def step(self, frames: torch.Tensor) -> torch.Tensor:
        """uint8 frames [N, S, S, 3] (host or device) → every stream's caption token ids [N, max_len] on
        the host (valid until the next step; clone to keep)."""
        self._frame.copy_(frames, non_blocking=True)
        if self._graph is None and self.cfg.graph and self.state.started:
            self._capture()
            self._frame.copy_(frames, non_blocking=True)
        if self._graph is not None:
            self._graph.replay()
            tokens = self._tokens
        else:
            tokens = self._body(early_exit=True)
        if self._joined:
            self._gaps.fill_(1)
            self._joined = False
        self._tokens_host.copy_(tokens, non_blocking=True)
        if self.device.type == "cuda":
            torch.cuda.current_stream().synchronize()
        return self._tokens_host
