"""The captioner benchmark: accuracy on fresh streams, and frames/s, memory and captions along one
long stream, for ours (gated delta rule, constant state) beside the softmax-attention baseline (KV
cache) and the same softmax captioner reading its cache sparsely (``SparseRead``).

Speed at stream length L is measured at L: the stream's first L − n frames are pushed through the
model as a sequence (prefill, in chunks), then n single-frame steps — captioning included — are timed
and their captions at segment ends scored. A softmax cache is preallocated for the whole stream.
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import torch

from agent.perception.captioner import Captioner, KVCache, SparseRead
from agent.perception.decode import CaptionDecoding
from agent.perception.serve import ServeConfig, StreamServer
from agent.perception.train import evaluate_captioner, load_checkpoint
from envs.synthetic import SceneConfig, StreamBatch, all_captions


def state_bytes(state) -> int:
    """Bytes the stream state holds (frame history plus every layer's state or KV cache; of a
    preallocated cache, the frames filled so far and its block sums)."""
    tensors = [state.frames]
    for s in state.layers:
        if isinstance(s, KVCache):
            tensors += [s.keys[:, :, :s.length], s.values[:, :, :s.length]]
            tensors += [] if s.key_sums is None else [s.key_sums[:, :, :-(-s.length // s.block)]]
        else:
            tensors += list(s) if isinstance(s, tuple) else [s]
    return sum(t.numel() * t.element_size() for t in tensors)


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_model(checkpoint: Path, device: str, sparse: SparseRead | None = None) -> Captioner:
    """The checkpoint's captioner, reading its cache sparsely with ``sparse`` (a softmax captioner)."""
    model = load_checkpoint(checkpoint, device)
    if sparse is not None:
        model.read_sparsely(sparse)
    return model


@torch.no_grad()
def speed_along_stream(checkpoint: Path, lengths: tuple[int, ...], timed: int = 300, seed: int = 123,
                       device: str = "cpu", sparse: SparseRead | None = None) -> list[dict]:
    """frames/s of step + constrained decode at each stream length, batch 1, and the exact captions
    among the timed steps' segment ends."""
    model = load_model(checkpoint, device, sparse)
    decoding = CaptionDecoding(model, all_captions(), device)
    frames, truths = StreamBatch([seed], SceneConfig(frame_size=model.cfg.frame_size)).next(2000)
    clip = torch.as_tensor(frames, device=device)  # [1, 2000, S, S, 3], cycled
    state = model.initial_state(1, device).preallocated(max(lengths) + 1, sparse.block if sparse else 0)
    seen, rows = 0, []
    for length in lengths:
        while seen < length - timed:  # prefill in chunks up to where the timed steps start
            n = min(1000, length - timed - seen)
            start = seen % 2000
            chunk = clip[:, start: start + n] if start + n <= 2000 else clip[:, :n]
            _, state = model(chunk, state)
            seen += n
        hits, ends, elapsed = 0, 0, 0.0
        for i in range(timed):
            t0 = time.perf_counter()
            feature, state = model.step(clip[:, (seen + i) % 2000], state)
            caption = decoding.greedy(feature)[0]
            elapsed += time.perf_counter() - t0
            truth = truths[0][(seen + i) % 2000]
            hits, ends = hits + (truth.is_last and caption == truth.caption), ends + truth.is_last
        seen += timed
        rows.append({"frame": seen, "fps": timed / elapsed, "ms_per_frame": 1000 * elapsed / timed,
                     "state_mb": state_bytes(state) / 2**20, "max_rss_mb": rss_mb(),
                     "exact": hits / max(1, ends), "segments": ends})
    return rows


def accuracy(checkpoint: Path, streams: int, frames: int, device: str = "cpu") -> dict:
    model = load_checkpoint(checkpoint, device)
    seeds = [8_000_000 + i for i in range(streams)]  # never used in training or in BENCHMARKS' other checks
    return evaluate_captioner(model, seeds, frames, torch.device(device))


@torch.no_grad()
def aged_streams(model, age: int, device: str, seed: int = 321, distinct: int = 8):
    """The state of ``distinct`` synthetic streams run ``age`` frames (in chunks, as one sequence each);
    :func:`many_streams` tiles it over N streams (a state is a stream's whole past: a tiled one is as
    old as the one it copies)."""
    batch = StreamBatch([seed + i for i in range(distinct)], SceneConfig(frame_size=model.cfg.frame_size))
    state = model.initial_state(distinct, device)
    seen = 0
    while seen < age:
        n = min(500, age - seen)
        frames, _ = batch.next(n)
        _, state = model(torch.as_tensor(frames, device=device), state)
        seen += n
    return state


@torch.no_grad()
def many_streams(checkpoint: Path, n_streams: int, device: str, age: int = 64, timed: int = 60,
                 cycle: int = 16, seed: int = 321, aged=None, serve: ServeConfig | None = None,
                 sparse: SparseRead | None = None) -> dict:
    """N independent streams batched through one model: frames/s each stream gets (steps/s, since a
    step advances every stream by one frame) and step latency, from the host-to-device frame copies to
    every stream's caption as token ids back on the host (what a server sends on; text is a table lookup
    away, done where it is shown).

    Every stream has first seen ``age`` frames (:func:`aged_streams`, or ``aged``, its result for this
    checkpoint and age, reused; a softmax model's cache is preallocated for the whole run). Timed frames come from 64 distinct synthetic streams tiled over N
    and cycled over ``cycle`` frames; they sit in (pinned) host memory like frames from N cameras, and
    each step copies its N frames to the device. ``serve``: bf16, a CUDA graph a step and torch.compile
    (:class:`StreamServer`; graph and compile only where the shapes stay fixed: a delta-rule model on CUDA).
    """
    model = load_model(checkpoint, device, sparse)
    decoding = CaptionDecoding(model, all_captions(), device)
    base, _ = StreamBatch([seed + i for i in range(64)], SceneConfig(frame_size=model.cfg.frame_size)).next(cycle)
    index = torch.arange(n_streams) % 64
    host = torch.as_tensor(base)[index].transpose(0, 1).contiguous()  # [cycle, N, S, S, 3]
    if device.startswith("cuda"):
        host = host.pin_memory()
    aged = aged_streams(model, age, device, seed) if aged is None else aged
    tile = torch.arange(n_streams, device=device) % aged.frames.shape[0]
    state = aged.preallocated(age + timed + 5, sparse.block if sparse else 0).select(tile)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    serve = (serve or ServeConfig()).runnable(model, device)
    server = StreamServer(model, decoding, state, serve)
    latencies = []
    for i in range(timed + 5):  # the first 5 steps warm up kernels, allocator and graph; not timed
        sync()
        t0 = time.perf_counter()
        server.step(host[i % cycle])  # every stream's caption, as token ids on the host
        if i >= 5:
            latencies.append(time.perf_counter() - t0)
    lat = torch.tensor(latencies)
    per_stream = timed / float(lat.sum())
    gpu_gb = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    return {"streams": n_streams, "age": age, "fps_per_stream": per_stream, "frames_per_s": per_stream * n_streams,
            "step_ms_p50": 1000 * float(lat.quantile(0.5)), "step_ms_p99": 1000 * float(lat.quantile(0.99)),
            "state_mb": state_bytes(state) / 2**20, "gpu_gb": gpu_gb, "bf16": serve.bf16, "graph": serve.graph,
            "compiled": serve.compile}


@torch.no_grad()
def served_accuracy(checkpoint: Path, device: str, serve: ServeConfig | None = None, streams: int = 256,
                    frames: int = 480, seed: int = 10**9, sparse: SparseRead | None = None) -> float:
    """Exact-match accuracy of held-out synthetic streams stepped through :class:`StreamServer` as
    ``serve`` runs it (bf16, graph, compile: what the speed rows ran), scored at each segment's last frame."""
    model = load_model(checkpoint, device, sparse)
    state = model.initial_state(streams, device).preallocated(frames + 1, sparse.block if sparse else 0)
    server = StreamServer(model, CaptionDecoding(model, all_captions(), device), state,
                          (serve or ServeConfig()).runnable(model, device))
    video, truths = StreamBatch([seed + i for i in range(streams)], SceneConfig(frame_size=model.cfg.frame_size)).next(frames)
    video = torch.as_tensor(video)
    hits = total = 0
    for t in range(frames):
        tokens = server.step(video[:, t]).tolist()
        for b in range(streams):
            if truths[b][t].is_last:
                hits += model.vocab.decode(tokens[b]) == truths[b][t].caption
                total += 1
    return hits / max(1, total)


def _row_or_oom(checkpoint: Path, n: int, device: str, age: int, aged, serve: ServeConfig | None,
                sparse: SparseRead | None) -> dict:
    """:func:`many_streams`, or a row marked ``oom`` (0 fps) when the device runs out of memory."""
    try:
        return many_streams(checkpoint, n, device, age, aged=aged, serve=serve, sparse=sparse)
    except torch.OutOfMemoryError:
        torch.cuda.empty_cache()
        return {"streams": n, "age": age, "fps_per_stream": 0.0, "frames_per_s": 0.0, "step_ms_p50": float("nan"),
                "step_ms_p99": float("nan"), "state_mb": float("nan"), "gpu_gb": float("nan"), "oom": True}


def streams_at(checkpoint: Path, counts: list[int], device: str, age: int = 64, report=None,
               serve: ServeConfig | None = None, sparse: SparseRead | None = None) -> list[dict]:
    """:func:`many_streams` at each N of ``counts``, every stream ``age`` frames old."""
    aged = aged_streams(load_checkpoint(checkpoint, device), age, device)
    rows = []
    for n in counts:
        rows.append(_row_or_oom(checkpoint, n, device, age, aged, serve, sparse))
        if report is not None:
            report(rows[-1])
    return rows


def max_live_streams(checkpoint: Path, device: str, fps: float = 30.0, age: int = 64, start: int = 16,
                     limit: int = 65536, report=None, serve: ServeConfig | None = None,
                     sparse: SparseRead | None = None) -> tuple[int, list[dict]]:
    """The largest N at which every one of N batched streams, each ``age`` frames old, still gets
    ``fps`` frames/s: doubling until it fails (or memory runs out), then bisecting to within 5%.
    Returns (N, every row measured)."""
    rows: list[dict] = []
    aged = aged_streams(load_checkpoint(checkpoint, device), age, device)

    def ok(n: int) -> bool:
        rows.append(_row_or_oom(checkpoint, n, device, age, aged, serve, sparse))
        if report is not None:
            report(rows[-1])
        return rows[-1]["fps_per_stream"] >= fps

    good, n = 0, start
    while n <= limit and ok(n):
        good, n = n, 2 * n
    bad = n
    while good and bad - good > max(1, good // 20):
        mid = (good + bad) // 2
        good, bad = (mid, bad) if ok(mid) else (good, mid)
    return good, sorted(rows, key=lambda r: r["streams"])
