"""Caption live streams one frame at a time: constant time and memory per frame.

``LiveCaptioner`` holds a checkpoint, its caption grammar and the streaming state of ``streams``
independent streams (batched through the model): ``tokens(frames)`` gives every stream's caption of
its newest frame as token ids, ``caption(frame)`` the text for a single stream.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from agent.perception.captioner import StreamState
from agent.perception.decode import CaptionDecoding
from agent.perception.train import checkpoint_grammar, checkpoint_meta, load_checkpoint
from envs.clips import square_resize

CHECKPOINTS = Path(__file__).parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINTS / "captioner.pt"


def env_checkpoint(env_id: str) -> Path | None:
    """The shipped checkpoint trained on ``env_id``'s renders (``--data env:ID``), if there is one; else
    one trained on renders of its family (any Meta-World task or sequence: one arm, table and camera)."""
    from envs.env_captions import caption_family, env_ids

    trained = {path: checkpoint_meta(path).get("train", {}).get("data", "")
               for path in sorted(CHECKPOINTS.glob("captioner*.pt"))}
    sources = {path: data.removeprefix("env:") for path, data in trained.items() if data.startswith("env:")}
    wanted = set(env_ids(env_id))
    for path, source in sources.items():
        if wanted <= set(env_ids(source)):
            return path
    for path, source in sources.items():
        if caption_family(source) == caption_family(env_id):
            return path
    return None


def resolve_captioner(choice: str | None, env_id: str | None) -> Path | None:
    """The checkpoint a ``--captioner`` choice means for ``env_id``: ``off`` (or None, as runs of an
    earlier version recorded it) none, ``auto`` the shipped one trained on that env (if any), else the
    path given."""
    if choice in (None, "off"):
        return None
    if choice == "auto":
        return env_checkpoint(env_id) if env_id else None
    return Path(choice)


def cpu_has_bf16() -> bool:
    """Whether this CPU has bf16 instructions oneDNN uses (AVX-512 BF16 or AMX)."""
    return torch.ops.mkldnn._is_mkldnn_bf16_supported()


class LiveCaptioner:
    """A captioner with the streaming state of ``streams`` streams; the state is never reset, as in
    training (streams run on across scene changes and episode resets)."""

    def __init__(self, checkpoint: Path = DEFAULT_CHECKPOINT, streams: int = 1, device: str = "cpu",
                 cpu_bf16: bool = False) -> None:
        """``cpu_bf16``: the frame encoder's convolutions in bf16 on a CPU (1.4–1.7× the frames/s where it
        has bf16 instructions: :func:`cpu_has_bf16`; the same captions, BENCHMARKS.md, but features only
        within ~4e-3, so not where features are a policy's input)."""
        self.device = torch.device(device)
        self.model = load_checkpoint(checkpoint, device)
        self.model.encoder.fold_batch_norm(cpu_bf16 and self.device.type == "cpu")  # never trained here
        self.size = self.model.cfg.frame_size
        self.max_len = self.model.cfg.max_len
        self.vocab = self.model.vocab
        self.decoding = CaptionDecoding(self.model, checkpoint_grammar(checkpoint), self.device)
        self.state = self.model.initial_state(streams, self.device)
        self._frame: Callable[..., tuple[torch.Tensor, StreamState]] | None = None  # ``compile``'s function
        # what the compiled function reads frames and gaps from: one layout, or a guard on strides compiles again
        self._input = torch.zeros(streams, self.size, self.size, 3, dtype=torch.uint8, device=self.device)
        self._gaps = torch.ones(streams, dtype=torch.long, device=self.device)

    def compile(self) -> bool:
        """On a CPU, a frame's step and its whole caption decode as one ``torch.compile``d function
        (1.8–2.9× the frames/s of the eager captioner at one frame a call on a core, the same tokens:
        BENCHMARKS.md); captioning then goes frame by frame. Compiles now, on blank frames (seconds;
        inductor caches the code on disk for the next run). Where it cannot (no C++ compiler), says so
        in one line and stays eager; returns whether it compiled. Run it on one thread where other work
        shares the cores: its threads wait on each other, and stall when one is descheduled."""
        frame = torch.compile(self._frame_tokens, dynamic=False)
        try:
            with torch.no_grad():  # both the first frame's graph and the one for the frames after it
                frame(self._input, frame(self._input, self.state, self._gaps)[1], self._gaps)
        except Exception as exc:  # noqa: BLE001 - an optimisation: any failure to build it leaves the eager path
            print(f"thalamus: the captioner runs uncompiled, slower ({type(exc).__name__}: "
                  f"{str(exc).splitlines()[0][:120]}); it compiles where a C++ compiler (g++) is installed",
                  file=sys.stderr)
            return False
        self._frame = frame
        return True

    @property
    def compiled(self) -> bool:
        """Whether frames go through the compiled function (``compile`` succeeded)."""
        return self._frame is not None

    def _frame_tokens(self, frame: torch.Tensor, state: StreamState, gaps: torch.Tensor
                      ) -> tuple[torch.Tensor, StreamState]:
        """One frame of every stream → its caption's token ids and the state after it (what ``compile``
        compiles: the decode runs to the caption's full length, which gives the same ids)."""
        feature, state = self.model.step(frame, state, gaps)
        return self.decoding.tokens(feature, early_exit=False), state

    def _frames(self, frames: np.ndarray) -> torch.Tensor:
        if frames.shape[1:3] != (self.size, self.size):
            frames = np.stack([square_resize(f, self.size) for f in frames])
        return torch.tensor(frames, device=self.device)

    @torch.no_grad()
    def features(self, frames: np.ndarray, gaps: np.ndarray | None = None) -> torch.Tensor:
        """uint8 RGB frames [streams, H, W, 3] (any size) → the temporal feature [streams, D] of each
        stream's newest frame; every stream's state moves on by its frame. ``gaps`` [streams]: source
        frames since each stream's previous frame (default 1: none skipped; read by models with timing)."""
        gap = None if gaps is None else torch.as_tensor(np.asarray(gaps), dtype=torch.long, device=self.device)
        feature, self.state = self.model.step(self._frames(frames), self.state, gap)
        return feature

    @torch.no_grad()
    def peek_features(self, frames: np.ndarray, streams: np.ndarray) -> np.ndarray:
        """float32 [K, D]: what :meth:`features` would give for ``frames`` [K, H, W, 3] as the next
        frames of ``streams`` [K], leaving every stream's state as it is."""
        if not len(streams):
            return np.zeros((0, self.model.cfg.d_model), np.float32)
        index = torch.as_tensor(streams, device=self.device)
        feature, _ = self.model.step(self._frames(frames), self.state.select(index))
        return feature.float().cpu().numpy()

    @torch.no_grad()
    def decode(self, feature: torch.Tensor) -> np.ndarray:
        """Temporal features [streams, D] → int16 caption token ids [streams, max_len]."""
        return self.decoding.tokens(feature).to(torch.int16).cpu().numpy()

    @torch.no_grad()
    def caption_steps(self, frames: np.ndarray, gaps: np.ndarray | None = None) -> np.ndarray:
        """uint8 RGB frames [T, streams, H, W, 3], T frames of every stream → int16 token ids
        [T, streams, max_len], each frame's caption. ``gaps`` [T]: source frames since each one's
        predecessor (default: consecutive; read by models with timing). The T frames go through the
        model at once (the chunked form of the temporal layers, one batched decode), so captioning that
        has fallen behind catches up at a lower cost per frame; the states end as after T single steps.
        Compiled (``compile``), they go one at a time: the compiled step costs less a frame still."""
        T, n = frames.shape[:2]
        if self._frame is not None:
            return np.stack([self.tokens(frames[t], None if gaps is None else np.full(n, gaps[t])) for t in range(T)])
        clip = self._frames(frames.reshape(T * n, *frames.shape[2:]))
        clip = clip.view(T, n, *clip.shape[1:]).transpose(0, 1)  # [streams, T, S, S, 3]
        gap = None if gaps is None else torch.as_tensor(np.asarray(gaps), dtype=torch.long,
                                                         device=self.device).expand(n, T)
        features, self.state = self.model(clip, self.state, gap)
        tokens = self.decode(features.transpose(0, 1).reshape(T * n, -1))
        return tokens.reshape(T, n, -1)

    def warm_up(self, max_steps: int) -> None:
        """Caption blank frames once for every call length up to ``max_steps`` and put the streams'
        state back: on a GPU, Triton compiles each kernel at its first call (on a fresh machine that
        held the first run with captions to 27% of one without: BENCHMARKS.md), and this moves the
        compiling before acting starts. Delta-rule captioners only (a softmax one's cache grows)."""
        if self.model.cfg.mixer != "delta":
            return
        state, n = self.state, self.state.frames.shape[0]
        for steps in range(1, max_steps + 1):
            self.caption_steps(np.zeros((steps, n, self.size, self.size, 3), np.uint8))
        self.state = state

    def tokens(self, frames: np.ndarray, gaps: np.ndarray | None = None) -> np.ndarray:
        """uint8 RGB frames [streams, H, W, 3] (any size) → int16 token ids [streams, max_len]."""
        if self._frame is None:
            return self.decode(self.features(frames, gaps))
        self._input.copy_(self._frames(frames))
        self._gaps.copy_(torch.as_tensor(np.ones(len(frames)) if gaps is None else np.asarray(gaps)))
        with torch.no_grad():
            tokens, self.state = self._frame(self._input, self.state, self._gaps)
        return tokens.to(torch.int16).cpu().numpy()

    def caption(self, rgb: np.ndarray, gap: int = 1) -> str:
        """One stream's caption of its newest frame (``streams`` must be 1), ``gap`` source frames after
        the one before it."""
        return self.text(self.tokens(rgb[None], np.array([gap]))[0])

    def text(self, tokens: np.ndarray) -> str:
        return self.vocab.decode(int(t) for t in tokens)
