"""A streaming video captioner: frame encoder → gated delta-rule temporal layers → caption decoder.

The temporal layers are linear attention with a fast-weight state (Yang et al. 2024, "Gated Delta
Networks"; the test-time KV-binding view): each layer's state ``S`` (per head ``K × V``) is carried
from frame to frame, so memory and time per frame stay constant over an unbounded stream. Motion is
made easy to see by feeding the encoder the frame, its difference to the previous frame and to the
frame ``gap`` steps back (captioner-notes: 1–3 px motions are a thin signal in a one-step difference).
A live camera on a busy machine skips and repeats frames, and motion read across a skipped frame looks
twice as fast: with ``timing`` the model is also told, per frame, how many source frames passed since
the one before it saw and over how many its ``gap`` difference reaches (learned embeddings added to the
frame's token). The decoder is a small GRU over caption tokens, conditioned on the frame's temporal
feature; at inference it is constrained by a trie of valid captions (``kernels/trie.py``).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from agent.perception.grammar import BOS, VOCAB, Vocab
from agent.config import SparseRead
from kernels import gated_delta_rule, gated_delta_rule_step, sparse_attention


@dataclass
class CaptionerConfig:
    """Model sizes; defaults are what the shipped checkpoint uses."""

    frame_size: int = 64
    channels: tuple[int, ...] = (32, 64, 64, 64)  # encoder convs, each stride 2
    d_model: int = 128
    n_layers: int = 2
    n_heads: int = 4
    head_dim: int = 32  # K = V per head
    vocab: tuple[str, ...] = VOCAB  # caption words, token i = vocab[i]: a checkpoint carries its own
    max_len: int = 12  # caption tokens including <eos>
    gap: int = 4  # the second difference channel is frame[t] - frame[t - gap]
    mixer: str = "delta"  # "delta": gated delta rule (ours); "softmax": attention over a KV cache (baseline)
    train_window: int = 256  # softmax only: frames of KV cache kept while training (inference keeps all)
    timing: int = 0  # >0: each frame is told the source frames since the one before (clamped to this); 0: not

    @property
    def vocab_size(self) -> int:
        """Token ids run 0..vocab_size-1 (the decoder's embedding and output sizes)."""
        return len(self.vocab)

    def to_dict(self) -> dict:
        return asdict(self)

    def with_frame_size(self, size: int) -> CaptionerConfig:
        """These sizes for frames of ``size`` pixels; ValueError unless the encoder can halve it at
        every convolution."""
        stride = 2 ** len(self.channels)
        if size < stride or size % stride:
            raise ValueError(f"the frame size must be a positive multiple of {stride} (the encoder halves it "
                             f"{len(self.channels)} times), got {size}")
        return replace(self, frame_size=size)


class FrameTokenizer(nn.Module):
    """[N, 9, S, S] (frame, diff 1, diff gap; scaled to ~[-1, 1]) → [N, d_model]; BatchNorm helps a lot
    here (captioner-notes), and flattening the last map keeps where things are."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        layers, c_in = [], 9
        for c in cfg.channels:
            layers += [nn.Conv2d(c_in, c, 3, stride=2, padding=1), nn.BatchNorm2d(c), nn.ReLU()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        side = cfg.frame_size // 2 ** len(cfg.channels)
        self.proj = nn.Linear(c_in * side * side, cfg.d_model)
        self.raw_input = False  # takes the frame and its differences unscaled, the scaling folded in (fold_batch_norm)

    @staticmethod
    def resized_projection(weight: torch.Tensor, channels: int, side: int) -> torch.Tensor:
        """``proj``'s weight ``[D, C·s·s]`` for a last feature map of ``side`` × ``side`` instead of s × s:
        each old cell's weight shared among the new cells by how much of the picture they have in common,
        so a uniform map projects exactly as before (the convolutions do not depend on the frame size, so
        a captioner keeps what it learned when its frames shrink; a fine-tune does the rest)."""
        old = round((weight.shape[1] // channels) ** 0.5)
        edges_old = torch.linspace(0, 1, old + 1, dtype=torch.float64)
        edges_new = torch.linspace(0, 1, side + 1, dtype=torch.float64)
        overlap = (torch.minimum(edges_new[1:, None], edges_old[None, 1:])
                   - torch.maximum(edges_new[:-1, None], edges_old[None, :-1])).clamp_min(0) * old  # [side, old]
        grid = weight.double().reshape(weight.shape[0], channels, old, old)
        return (overlap @ grid @ overlap.T).flatten(1).to(weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, 9, S, S]: the frame and its two differences scaled (``Captioner._inputs``), or once
        folded unscaled, in the convs' dtype."""
        if self.raw_input:
            return self.proj(self.conv(x).float().flatten(1))
        return self.proj(self.conv(x).flatten(1))

    def fold_batch_norm(self, cpu_bf16: bool = False) -> None:
        """For inference only: each BatchNorm folded into the conv before it, the input scaling into the
        first (``_raw_input_conv``), the convs channels-last (the same outputs to float rounding, ~1.3×
        faster on a CPU core); ``cpu_bf16``: the convs in bf16 on a CPU (1.4–1.7× the captioner's
        frames/s where it has bf16 instructions; features within ~4e-3)."""
        layers = list(self.conv)
        folded: list[nn.Module] = []
        for conv, norm, act in zip(layers[0::3], layers[1::3], layers[2::3]):
            folded += [fuse_conv_bn_eval(conv, norm), act]
        folded[0] = self._raw_input_conv(folded[0])
        self.conv = nn.Sequential(*folded).to(memory_format=torch.channels_last)
        if cpu_bf16:  # the weights cast once: what bf16 autocast computes, without its casts every call
            self.conv = self.conv.to(torch.bfloat16)
        self.raw_input = True

    @staticmethod
    def _raw_input_conv(conv: nn.Conv2d) -> nn.Conv2d:
        """The first conv with the input scaling folded in (building the scaled frame and differences was
        a fifth of a CPU captioner's time, py-spy). Its input was [a·f − 1, a(f − p1), a(f − pg)] with
        a = 1/127.5, i.e. a·[f − 127.5, f − p1, f − pg]: it now reads those unscaled (half-integers
        and whole numbers within ±255 that bf16 holds exactly) with weights a·W. Zero padding means the
        same in both (a scaled 0 is f = 127.5), so the conv's own bias is all the offset there is."""
        raw = nn.Conv2d(9, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                        bias=conv.bias is not None, device=conv.weight.device)
        raw.weight.data = conv.weight.detach() / 127.5
        if conv.bias is not None:
            raw.bias.data = conv.bias.detach().clone()
        return raw


class FrameTiming(nn.Module):
    """Source frames since the previous seen frame (0: a repeat) and spanned by the ``gap``
    difference → an embedding added to the frame's token."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        self.limit, self.gap = cfg.timing, cfg.gap
        self.step = nn.Embedding(cfg.timing + 1, cfg.d_model)
        self.span = nn.Embedding(cfg.timing * cfg.gap + 1, cfg.d_model)
        nn.init.zeros_(self.step.weight)  # a model trained without skips starts out the same with them
        nn.init.zeros_(self.span.weight)

    def forward(self, gaps: torch.Tensor, history: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """gaps [B, T] and the previous ``gap`` frames' gaps [B, gap] → embeddings [B, T, D], new history."""
        g = gaps.clamp(0, self.limit)
        seq = torch.cat([history, g], 1)  # [B, gap + T]
        span = seq.cumsum(1)
        T = g.shape[1]
        reach = span[:, self.gap:] - span[:, :T]  # frames covered by each frame's gap difference
        return self.step(g) + self.span(reach), seq[:, -self.gap:]


class DeltaRuleBlock(nn.Module):
    """Pre-norm gated delta-rule mixer + MLP, both residual. State per head: [K, V] fp32."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        d, h, k = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.h, self.k = h, k
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * h * k)
        self.gates = nn.Linear(d, 2 * h)  # decay g = -softplus(.), write strength beta = sigmoid(.)
        self.head_norm = nn.LayerNorm(k)
        self.out = nn.Linear(h * k, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def _project(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        *lead, _ = x.shape
        q, k, v = self.qkv(x).view(*lead, 3, self.h, self.k).unbind(-3)
        g, beta = self.gates(x).view(*lead, 2, self.h).unbind(-2)
        return F.normalize(q, dim=-1), F.normalize(k, dim=-1), v, -F.softplus(g), torch.sigmoid(beta)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x [B, T, D] (or [B, D] for one streaming step), state [B, H, K, V] → same shapes."""
        q, k, v, g, beta = self._project(self.norm1(x))
        if x.dim() == 2:
            o, state = gated_delta_rule_step(q, k, v, g, beta, state)
        else:
            o, state = gated_delta_rule(q, k, v, g, beta, initial_state=state)
        x = x + self.out(self.head_norm(o).flatten(-2))
        return x + self.mlp(self.norm2(x)), state


class SoftmaxBlock(nn.Module):
    """The baseline mixer: causal softmax attention over a growing KV cache (same sizes as
    :class:`DeltaRuleBlock`); its cost per frame grows with the stream, ours does not. With ``sparse``
    set (:meth:`Captioner.read_sparsely`) a step over a preallocated cache reads only the blocks kept."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        d, h, k = cfg.d_model, cfg.n_heads, cfg.head_dim
        self.h, self.k, self.window = h, k, cfg.train_window
        self.sparse: SparseRead | None = None
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * h * k)
        self.head_norm = nn.LayerNorm(k)
        self.out = nn.Linear(h * k, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

    def forward(self, x: torch.Tensor, cache: "tuple[torch.Tensor, torch.Tensor] | KVCache"
                ) -> "tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor] | KVCache]":
        """x [B, T, D] (or [B, D]), cache (keys, values) each [B, H, L, K] → same, cache grown by T
        (a :class:`KVCache`: written in place)."""
        step = x.dim() == 2
        h = x[:, None] if step else x
        B, T, _ = h.shape
        q, k, v = self.qkv(self.norm1(h)).view(B, T, 3, self.h, self.k).permute(2, 0, 3, 1, 4)
        if isinstance(cache, KVCache):
            keys, values = cache.append(k, v)
            cache = replace(cache, length=cache.length + T)
        else:
            keys, values = torch.cat([cache[0], k], 2), torch.cat([cache[1], v], 2)
            cache = (keys, values)
        read = self.sparse
        if step and read is not None and isinstance(cache, KVCache) and cache.key_sums is not None:
            o = sparse_attention(q, keys, values, read.top_k, read.top_p, read.block, key_means=cache.key_means(),
                                 local=read.local)
        else:
            L = keys.shape[2] - T
            mask = torch.ones(T, L + T, dtype=torch.bool, device=x.device).tril(L)
            o = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask)  # [B, H, T, K]
        h = h + self.out(self.head_norm(o).transpose(1, 2).flatten(-2))
        h = h + self.mlp(self.norm2(h))
        if self.training and self.window:
            cache = (keys[:, :, -self.window:], values[:, :, -self.window:])
        return (h[:, 0] if step else h), cache


@dataclass
class KVCache:
    """A softmax layer's keys and values in buffers allocated once for ``capacity`` frames, as a fair
    streaming implementation keeps them (growing a cache by concatenation copies it every frame)."""

    keys: torch.Tensor  # [B, H, capacity, K]; the first ``length`` frames are filled
    values: torch.Tensor
    length: int
    block: int = 0  # > 0: keep each block of this many frames' key sum, for a sparse read
    key_sums: torch.Tensor | None = None  # [B, H, ⌈capacity / block⌉, K]

    @staticmethod
    def of(cache: tuple[torch.Tensor, torch.Tensor], capacity: int, block: int = 0) -> "KVCache":
        """A (keys, values) cache copied into buffers of ``capacity`` frames (and, with ``block``, its
        keys' block sums)."""
        keys, values = cache
        B, H, L, K = keys.shape
        if L > capacity:
            raise ValueError(f"the cache holds {L} frames, more than the capacity {capacity}")
        buffers = [t.new_zeros(B, H, capacity, K) for t in (keys, values)]
        for buf, t in zip(buffers, (keys, values)):
            buf[:, :, :L] = t
        sums = keys.new_zeros(B, H, -(-capacity // block), K) if block else None
        if sums is not None:
            sums.index_add_(2, torch.arange(L, device=keys.device) // block, keys)
        return KVCache(*buffers, L, block, sums)

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Write T new frames' keys and values [B, H, T, K] after the filled ones; the filled views."""
        end = self.length + k.shape[2]
        if end > self.keys.shape[2]:
            raise ValueError(f"the KV cache is full ({self.keys.shape[2]} frames)")
        self.keys[:, :, self.length:end] = k
        self.values[:, :, self.length:end] = v
        if self.key_sums is not None:  # k may be bf16 (a step under autocast) where the sums are fp32
            self.key_sums.index_add_(2, torch.arange(self.length, end, device=k.device) // self.block,
                                     k.to(self.key_sums.dtype))
        return self.keys[:, :, :end], self.values[:, :, :end]

    def key_means(self) -> torch.Tensor:
        """[B, H, ⌈length / block⌉, K]: the mean key of each filled block (the last may be part filled)."""
        n = -(-self.length // self.block)
        sizes = torch.full((n,), float(self.block), device=self.keys.device)
        sizes[-1] = self.length - (n - 1) * self.block
        return self.key_sums[:, :, :n] / sizes[:, None]

    def select(self, index: torch.Tensor) -> "KVCache":
        sums = None if self.key_sums is None else self.key_sums[index]
        return KVCache(self.keys[index], self.values[index], self.length, self.block, sums)


class CaptionDecoder(nn.Module):
    """A GRU over caption tokens whose initial hidden state comes from the frame feature."""

    def __init__(self, cfg: CaptionerConfig) -> None:
        super().__init__()
        d = cfg.d_model
        self.init = nn.Linear(d, d)
        self.embed = nn.Embedding(cfg.vocab_size, d)
        self.cell = nn.GRUCell(2 * d, d)
        self.head = nn.Linear(d, cfg.vocab_size)

    def start(self, feature: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.init(feature))

    def shared(self, feature: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What every token's :meth:`step` of these features shares, made once a caption: the cell's
        input weights applied to every token's embedding [vocab, 3D] and to the feature, with the input
        bias [N, 3D]. Made again at each token, that projection was two thirds of a CPU decode's time."""
        d = feature.shape[-1]
        w = self.cell.weight_ih
        return F.linear(self.embed.weight, w[:, :d]), F.linear(feature, w[:, d:], self.cell.bias_ih)

    def advance(self, hidden: torch.Tensor, token: torch.Tensor, shared: tuple[torch.Tensor, torch.Tensor]
                ) -> torch.Tensor:
        """The hidden state after one more token: (hidden [N, D], previous token [N], ``shared(feature)``)
        → hidden, the cell's GRU arithmetic (gates r, z, n in its weights' order) on the shared input."""
        tokens_in, feature_in = shared
        x = tokens_in[token] + feature_in
        h = F.linear(hidden, self.cell.weight_hh, self.cell.bias_hh)
        d = hidden.shape[-1]
        r, z = torch.sigmoid(x[:, :2 * d] + h[:, :2 * d]).chunk(2, -1)
        n = torch.tanh(x[:, 2 * d:] + r * h[:, 2 * d:])
        return torch.lerp(n, hidden, z)  # (1 − z) n + z h

    def step(self, hidden: torch.Tensor, token: torch.Tensor, shared: tuple[torch.Tensor, torch.Tensor]
             ) -> tuple[torch.Tensor, torch.Tensor]:
        """One token: :meth:`advance`, and the next token's logits [N, vocab] from the new hidden state."""
        hidden = self.advance(hidden, token, shared)
        return self.head(hidden), hidden

    def forward(self, feature: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Teacher forcing: feature [N, D], target tokens [N, L] → logits [N, L, vocab]. The cell's
        weights run as one fused GRU over the L positions (cuDNN on a GPU): what :meth:`step` gives
        token by token, in a few kernels rather than a dozen per token, forward and backward."""
        prev = torch.cat([torch.full_like(tokens[:, :1], BOS), tokens[:, :-1]], 1)  # [N, L]
        x = torch.cat([self.embed(prev), feature[:, None].expand(-1, prev.shape[1], -1)], -1)
        c = self.cell  # nn.GRU's own op on the cell's weights: the module keeps one copy of them
        with warnings.catch_warnings():  # cuDNN copies the cell's four tensors into one buffer a call
            warnings.filterwarnings("ignore", message="RNN module weights are not part of single contiguous")
            out, _ = torch._VF.gru(x, self.start(feature)[None], [c.weight_ih, c.weight_hh, c.bias_ih, c.bias_hh],
                                   True, 1, 0.0, self.training, False, True)
        return self.head(out)


@dataclass
class StreamState:
    """What the captioner carries between frames: the last ``gap`` frames and each layer's state."""

    frames: torch.Tensor  # [B, gap, S, S, 3] uint8 as they came, most recent last (a quarter of float's bytes)
    layers: list  # per layer: the delta-rule state [B, H, K, V] fp32, or a (keys, values) KV cache or KVCache
    started: bool = False
    gaps: torch.Tensor | None = None  # [B, gap] long: source frames before each of those frames (with timing)

    def detach(self) -> "StreamState":
        layers = [tuple(t.detach() for t in s) if isinstance(s, tuple) else s.detach() for s in self.layers]
        return StreamState(self.frames.detach(), layers, self.started, self.gaps)

    def finite(self) -> "StreamState":
        """This state with each stream whose layer state is not finite started over (zeros), without
        reading anything back from the device: in training, one bad chunk then costs that stream its
        memory instead of making every later step's gradient NaN."""
        def clean(t: torch.Tensor) -> torch.Tensor:
            ok = torch.isfinite(t).flatten(1).all(1).view(-1, *[1] * (t.dim() - 1))
            return torch.where(ok, t, torch.zeros_like(t))

        layers = [tuple(clean(t) for t in s) if isinstance(s, tuple) else clean(s) for s in self.layers]
        return StreamState(self.frames, layers, self.started, self.gaps)

    def select(self, index: torch.Tensor) -> "StreamState":
        """The state of the streams ``index`` [K] (a copy, for a look ahead that is not kept)."""
        layers = [tuple(t[index] for t in s) if isinstance(s, tuple) else s.select(index) if isinstance(s, KVCache)
                  else s[index] for s in self.layers]
        return StreamState(self.frames[index], layers, self.started, None if self.gaps is None else self.gaps[index])

    def preallocated(self, capacity: int, block: int = 0) -> "StreamState":
        """A softmax model's state with each layer's cache in buffers of ``capacity`` frames (and, with
        ``block``, its keys' block sums for a sparse read); a delta-rule state is returned as it is."""
        layers = [KVCache.of(s, capacity, block) if isinstance(s, tuple) else s for s in self.layers]
        return StreamState(self.frames, layers, self.started, self.gaps)


class Captioner(nn.Module):
    """Frames in, a temporal feature per frame out; ``decoder`` turns a feature into a caption."""

    def __init__(self, cfg: CaptionerConfig | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or CaptionerConfig()
        self.vocab = Vocab(cfg.vocab)
        self.encoder = FrameTokenizer(cfg)
        self.timing = FrameTiming(cfg) if cfg.timing else None
        if cfg.mixer not in ("delta", "softmax"):
            raise ValueError(f"mixer must be 'delta' or 'softmax', got {cfg.mixer!r}")
        block = DeltaRuleBlock if cfg.mixer == "delta" else SoftmaxBlock
        self.blocks = nn.ModuleList(block(cfg) for _ in range(cfg.n_layers))
        self.norm = nn.LayerNorm(cfg.d_model)
        self.decoder = CaptionDecoder(cfg)

    def read_sparsely(self, read: SparseRead | None) -> None:
        """A softmax captioner's steps read only the kept blocks of a preallocated cache
        (``state.preallocated(capacity, read.block)``); None: dense again."""
        if self.cfg.mixer != "softmax":
            raise ValueError("only a softmax captioner reads a KV cache; this one is a delta-rule captioner")
        for block in self.blocks:
            block.sparse = read

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> StreamState:
        c = self.cfg
        frames = torch.zeros(batch, c.gap, c.frame_size, c.frame_size, 3, dtype=torch.uint8, device=device)
        if c.mixer == "softmax":
            empty = torch.zeros(batch, c.n_heads, 0, c.head_dim, device=device)
            layers: list = [(empty, empty) for _ in self.blocks]
        else:
            layers = [torch.zeros(batch, c.n_heads, c.head_dim, c.head_dim, device=device) for _ in self.blocks]
        gaps = torch.zeros(batch, c.gap, dtype=torch.long, device=device) if c.timing else None
        return StreamState(frames, layers, gaps=gaps)

    def _inputs(self, frames: torch.Tensor, state: StreamState) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 [B, T, S, S, 3] → encoder input [B, T, 9, S, S] and the new frame history (uint8: the
        history is most of a stream's state, and scaling it again each step is exact). A folded encoder
        (``FrameTokenizer.fold_batch_norm``) takes the frame (centred) and differences unscaled."""
        history = state.frames
        if not state.started:  # the first frame has no past: it is its own past
            history = frames[:, :1].expand_as(history)
        seq = torch.cat([history, frames], 1)  # [B, gap + T, S, S, 3]
        gap, T = self.cfg.gap, frames.shape[1]
        if self.encoder.raw_input:  # the scaling is in the first conv: [B, T, 9, S, S] unscaled, channels last
            dtype = self.encoder.conv[0].weight.dtype
            now = frames.to(dtype)
            raw = torch.cat([now - 127.5, now - seq[:, gap - 1: gap - 1 + T].to(dtype), now - seq[:, :T].to(dtype)], -1)
            return raw.permute(0, 1, 4, 2, 3), seq[:, -gap:]

        def scaled(u8: torch.Tensor) -> torch.Tensor:
            return u8.permute(0, 1, 4, 2, 3).float() / 127.5 - 1.0  # [B, T, 3, S, S]

        x = scaled(frames)
        diff1 = x - scaled(seq[:, gap - 1: gap - 1 + T])
        diffg = x - scaled(seq[:, :T])
        return torch.cat([x, diff1, diffg], 2), seq[:, -gap:]

    def _timed(self, h: torch.Tensor, gaps: torch.Tensor | None, state: StreamState
               ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Add the timing embedding to the tokens h [B, T, D]; gaps [B, T] (None: every frame the next)."""
        if self.timing is None:
            return h, None
        if gaps is None:
            gaps = torch.ones(h.shape[:2], dtype=torch.long, device=h.device)
        if not state.started:  # the first frame is its own past: nothing has passed
            gaps = torch.cat([torch.zeros_like(gaps[:, :1]), gaps[:, 1:]], 1)
        embedding, history = self.timing(gaps.to(h.device), state.gaps)
        return h + embedding, history

    def forward(self, frames: torch.Tensor, state: StreamState, gaps: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, StreamState]:
        """frames uint8 [B, T, S, S, 3] (and, with timing, gaps [B, T]: source frames since each one's
        predecessor) → features [B, T, D] and the state after the last frame."""
        B, T = frames.shape[:2]
        x, history = self._inputs(frames, state)
        h, timing = self._timed(self.encoder(x.flatten(0, 1)).view(B, T, -1), gaps, state)
        new_layers = []
        for block, s in zip(self.blocks, state.layers):
            h, s = block(h, s)
            new_layers.append(s)
        return self.norm(h), StreamState(history, new_layers, True, timing)

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: StreamState, gaps: torch.Tensor | None = None
             ) -> tuple[torch.Tensor, StreamState]:
        """One streaming frame: uint8 [B, S, S, 3] (gaps [B]) → feature [B, D]; constant time and memory."""
        x, history = self._inputs(frame[:, None], state)
        h, timing = self._timed(self.encoder(x[:, 0])[:, None], None if gaps is None else gaps[:, None], state)
        h = h[:, 0]
        new_layers = []
        for block, s in zip(self.blocks, state.layers):
            h, s = block(h, s)
            new_layers.append(s)
        return self.norm(h), StreamState(history, new_layers, True, timing)
