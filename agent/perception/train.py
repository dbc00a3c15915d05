"""Train and evaluate the captioner on the synthetic scenes, captioned env renders or a folder of
captioned video clips (``envs/clips.py``), top to bottom.

    from agent.perception.train import TrainConfig, train_captioner
    train_captioner(TrainConfig(steps=3000, device="cuda"), out=Path("captioner.pt"))

Persistent streams (each its own scene stream and carried state) are cut into chunks of frames;
each chunk is one truncated-BPTT step: the state is carried across chunks and detached, so chunks
cross segment boundaries and nothing is ever reset by hand — exactly what the model meets live.
The loss is the caption's cross-entropy at every frame (teacher forcing).

A checkpoint carries what it needs to caption: its vocabulary (the built-in words plus any new words
of its data's captions, in ``config["vocab"]``) and its caption list (``meta["grammar"]``, read by
``checkpoint_grammar``).
"""

from __future__ import annotations

import math
import time
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from agent.checkpoints import load_tensors
from agent.perception.camera import CameraConfig
from agent.perception.captioner import Captioner, CaptionerConfig, FrameTokenizer
from agent.perception.data import ParallelStreams, eval_data, grammar, is_clips, open_batch
from agent.perception.decode import CaptionDecoding
from agent.perception.grammar import VOCAB, Vocab
from agent.perception.train_steps import TrainSteps, make_optimizer, set_lr


@dataclass
class TrainConfig:
    """Training schedule; the defaults made the shipped checkpoint (see BENCHMARKS.md)."""

    steps: int = 3000
    streams: int = 32  # persistent streams per batch
    chunk: int = 32  # frames per truncated-BPTT chunk
    lr: float = 2e-3
    warmup: int = 100
    weight_decay: float = 0.01
    seed: int = 0
    data: str = "synthetic"  # or env:ID (CartPole-v1, InvertedPendulum-v5: captions from simulator state),
    # or a directory of captioned clips (envs/clips.py), scored on DIR/heldout/ if it has one
    device: str = "cpu"
    workers: int = 1  # processes generating frames (>1 keeps a GPU fed)
    eval_every: int = 500  # 0: only at the end
    eval_streams: int = 16
    eval_frames: int = 480
    camera: bool = False  # frames as a busy live camera delivers them (camera.py); the model reads each one's gap
    init: str | None = None  # a checkpoint to start from (its sizes and vocabulary are kept) instead of scratch
    frame_size: int | None = None  # the frames' side in pixels; None: init's, or model.frame_size from scratch
    graph: bool = False  # CUDA, delta-rule model: replay the step as one CUDA graph after warm-up (train_steps.py)
    model: CaptionerConfig = field(default_factory=CaptionerConfig)  # its vocab is set from the data's captions


REPORT_LOSS_EVERY = 10  # steps between reads of the loss for progress (each read syncs with the GPU)


@contextmanager
def tf32_on(device: torch.device) -> Iterator[None]:
    """TF32 matmuls while training on a GPU (PyTorch's own switch, restored after)."""
    before = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = before or device.type == "cuda"
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = before


def _on(device: torch.device, host: Any) -> torch.Tensor:
    """``host`` (an array or nested lists) on ``device``. To a GPU through pinned memory without waiting:
    a copy from pageable memory first waits for every kernel queued, so the host could not queue the
    next step while the GPU runs this one (the pinned block is kept until its copy is done)."""
    x = torch.as_tensor(host)
    return x.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else x.to(device)


@dataclass(frozen=True)
class CaptionTable:
    """Every caption's token row and its index in ``rows``: a chunk's targets are one gather (building
    them as nested lists took the trainer 1.3 ms a step, 0.17 ms this way)."""

    index: dict[str, int]
    rows: torch.Tensor  # [captions, max_len] token ids

    @staticmethod
    def of(vocab: Vocab, captions: Sequence[str], max_len: int) -> "CaptionTable":
        return CaptionTable({c: i for i, c in enumerate(captions)}, torch.tensor(vocab.table(captions, max_len)))

    def targets(self, truths: list[list]) -> torch.Tensor:
        """Token ids [B, T, L] of each stream's frames' captions."""
        return self.rows[torch.tensor([[self.index[t.caption] for t in stream] for stream in truths])]


def _targets(truths: list[list], table: CaptionTable, device: torch.device) -> torch.Tensor:
    return _on(device, table.targets(truths))  # [B, T, L]


def _gaps(truths: list[list], device: torch.device) -> torch.Tensor | None:
    """The camera's gap of every frame [B, T] (None for frames delivered one after another)."""
    if not truths or not hasattr(truths[0][0], "gap"):
        return None
    return _on(device, [[t.gap for t in stream] for stream in truths])


def evaluate_captioner(model: Captioner, seeds: list[int], n_frames: int, device: torch.device,
                       chunk: int = 64, data: str = "synthetic",
                       captions: Sequence[str] | None = None, camera: CameraConfig | None = None,
                       play: str = "mixed") -> dict[str, float]:
    """Accuracy on fresh streams: the caption in effect at each scored frame (a segment's last frame;
    every env frame), decoded under ``captions`` (default: ``data``'s grammar), against the truth; plus
    per-attribute accuracy (object count, color, shape, motion for the scenes; pole and cart for envs;
    none for clips, whose captions have no fixed form). ``camera``: the streams as such a busy live
    camera delivers them (a skipped segment end is scored at the frame before it); ``play``: how an env's
    episodes are played (`EnvCaptionBatch`)."""
    model.eval()
    decoding = CaptionDecoding(model, grammar(data) if captions is None else captions, device)
    attributes = (lambda text: []) if is_clips(data) else _attributes
    batch = open_batch(data, seeds, model.cfg.frame_size, camera, play)
    state = model.initial_state(len(seeds), device)
    hits: dict[str, int] = {"exact": 0}
    totals: dict[str, int] = {"exact": 0}
    with torch.no_grad():
        for _ in range(math.ceil(n_frames / chunk)):
            frames, truths = batch.next(chunk)
            feats, state = model(torch.as_tensor(frames, device=device), state, _gaps(truths, device))
            where = [(b, t) for b, stream in enumerate(truths) for t, tr in enumerate(stream) if tr.is_last]
            if not where:
                continue
            idx_b, idx_t = zip(*where)
            captions = decoding.greedy(feats[list(idx_b), list(idx_t)])
            for (b, t), text in zip(where, captions):
                truth = truths[b][t].caption
                hits["exact"] += text == truth
                totals["exact"] += 1
                want, got = attributes(truth), attributes(text)
                for i, (name, value) in enumerate(want):
                    hits[name] = hits.get(name, 0) + (i < len(got) and got[i] == (name, value))
                    totals[name] = totals.get(name, 0) + 1
    model.train()
    return {k: hits[k] / max(1, totals[k]) for k in totals} | {"segments": totals["exact"]}


def _attributes(caption: str) -> list[tuple[str, str]]:
    """Position-aligned attributes of a caption: ``a red circle moves left and …`` →
    [("count", "2"), ("color", "red"), ("shape", "circle"), ("motion", "moves left"), …];
    ``the pole leans left and the cart …`` → [("pole", "leans left"), ("cart", …)]."""
    phrases = [p.split() for p in caption.split(" and ")]
    out: list[tuple[str, str]] = []
    objects = [w for w in phrases if w and w[0] == "a"]
    if objects:
        out.append(("count", str(len(objects))))
    for words in phrases:
        if words and words[0] == "a" and len(words) == 5:
            out += [("color", words[1]), ("shape", words[2]), ("motion", " ".join(words[3:]))]
        elif words and words[0] == "the" and len(words) >= 3:
            out.append((words[1], " ".join(words[2:])))
    return out


def _warmup_cosine(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear warm-up, then a cosine down to 0 at ``total``."""
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / total))


def train_captioner(cfg: TrainConfig, out: Path | None = None,
                    progress: Callable[[int, dict], None] | None = None, frames: Any = None) -> dict:
    """Train from scratch; returns the final metrics and writes a checkpoint to ``out``. ``frames``:
    ``cfg.streams`` streams made beforehand (``next(n)`` as `open_batch`'s) to train on instead of
    generating ``cfg.data``'s as it goes; ``cfg.data`` still names the captions and where they are scored."""
    captions = grammar(cfg.data)  # a bad folder of clips fails here, before workers start
    scored_on = eval_data(cfg.data)
    start = load_checkpoint(Path(cfg.init)) if cfg.init else None
    model_cfg = start.cfg if start is not None else replace(cfg.model, vocab=Vocab.for_captions(captions).words)
    if cfg.camera and not model_cfg.timing:
        model_cfg = replace(model_cfg, timing=CameraConfig().max_skip + 1)
    model_cfg = model_cfg.with_frame_size(cfg.frame_size or model_cfg.frame_size)
    seeds = [cfg.seed * 1_000_003 + i for i in range(cfg.streams)]
    size = model_cfg.frame_size
    if frames is not None:
        data = frames
    elif cfg.workers > 1:  # processes are forked before CUDA starts
        data = ParallelStreams(cfg.data, seeds, size, cfg.chunk, cfg.workers,
                               camera=CameraConfig() if cfg.camera else None)
    else:
        data = open_batch(cfg.data, seeds, size, CameraConfig() if cfg.camera else None)
    torch.manual_seed(cfg.seed)
    device = torch.device(cfg.device)
    model = Captioner(model_cfg).to(device)
    if start is not None:  # its weights; a timing embedding it lacks starts at zero (the same captions)
        weights = start.state_dict()
        if model_cfg.frame_size != start.cfg.frame_size:  # smaller or larger frames: the projection resampled
            side = model_cfg.frame_size // 2 ** len(model_cfg.channels)
            weights["encoder.proj.weight"] = FrameTokenizer.resized_projection(
                weights["encoder.proj.weight"], model_cfg.channels[-1], side)
        missing, _ = model.load_state_dict(weights, strict=False)
        if any(not k.startswith("timing.") for k in missing):
            raise ValueError(f"{cfg.init}: its weights do not fit this captioner (missing {missing[:3]})")
    graph = cfg.graph and device.type == "cuda" and model_cfg.mixer == "delta"
    opt = make_optimizer(model, cfg.lr, cfg.weight_decay, capturable=graph)
    table = CaptionTable.of(model.vocab, captions, model_cfg.max_len)
    steps = TrainSteps(model, opt, model.initial_state(cfg.streams, device), graph=graph)
    eval_seeds = [10**9 + cfg.seed * 1000 + i for i in range(cfg.eval_streams)]
    metrics: dict = {}
    loss_seen = float("nan")
    n_skipped = torch.zeros((), dtype=torch.long, device=device)  # steps whose gradient was not finite
    first_skipped = torch.full((), -1, dtype=torch.long, device=device)
    started = time.perf_counter()
    with tf32_on(device):
        for step in range(cfg.steps):
            frames, truths = data.next(cfg.chunk)
            set_lr(opt, cfg.lr * _warmup_cosine(step, cfg.warmup, cfg.steps))
            loss, skipped = steps(_on(device, frames), _targets(truths, table, device), _gaps(truths, device))
            first_skipped = torch.where(skipped & (first_skipped < 0), step, first_skipped)
            n_skipped += skipped
            last = step == cfg.steps - 1
            if last or (cfg.eval_every and (step + 1) % cfg.eval_every == 0):
                metrics = evaluate_captioner(model, eval_seeds, cfg.eval_frames, device, data=scored_on,
                                             captions=captions)
                if cfg.camera:
                    camera = evaluate_captioner(model, eval_seeds, cfg.eval_frames, device, data=scored_on,
                                                captions=captions, camera=CameraConfig())
                    metrics |= {"camera_exact": camera["exact"], "camera_segments": camera["segments"]}
            if progress is not None:
                if last or step % REPORT_LOSS_EVERY == 0:  # reading the loss waits for the GPU: not every step
                    loss_seen = loss.item()
                progress(step + 1, {"loss": loss_seen, "elapsed_s": time.perf_counter() - started, **metrics})
    if isinstance(data, ParallelStreams):
        data.close()
    metrics["train_s"] = time.perf_counter() - started
    metrics["frames"] = cfg.steps * cfg.streams * cfg.chunk
    metrics["skipped_steps"] = int(n_skipped)
    if metrics["skipped_steps"]:
        metrics["first_skipped_step"] = int(first_skipped)
    if out is not None:
        save_checkpoint(model, out, {"train": asdict(cfg) | {"model": model_cfg.to_dict()}, "grammar": captions,
                                     "eval_data": scored_on, "metrics": metrics})
    return metrics


def save_checkpoint(model: Captioner, path: Path, meta: dict) -> None:
    """Weights (fp32) plus the config and how they were made."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": "thalamus-captioner", "version": 1, "config": model.cfg.to_dict(),
                "state_dict": {k: v.cpu() for k, v in model.state_dict().items()}, "meta": meta}, path)


def _read(path: Path, device: str = "cpu") -> dict:
    """A checkpoint file's contents, loaded as tensors and plain data only: CheckpointError (a
    ValueError) for a torch.save file holding objects that would run code when loaded, ValueError
    for any other file that is not a captioner checkpoint."""
    if not zipfile.is_zipfile(path):  # every torch.save file is a zip archive; a text file is not one
        raise ValueError(f"{path} is not a thalamus captioner checkpoint (not a torch.save file)")
    blob = load_tensors(path, map_location=device)
    if not isinstance(blob, dict) or blob.get("format") != "thalamus-captioner":
        raise ValueError(f"{path} is not a thalamus captioner checkpoint")
    return blob


def _config(blob: dict, path: Path) -> CaptionerConfig:
    cfg = dict(blob["config"])
    cfg["channels"] = tuple(cfg["channels"])
    size = cfg.pop("vocab_size", None)  # checkpoints from before per-checkpoint vocabularies: the built-in one
    cfg["vocab"] = tuple(cfg.get("vocab", VOCAB))
    if size is not None and size != len(cfg["vocab"]):
        raise ValueError(f"{path}: vocab_size {size} does not match its {len(cfg['vocab'])} vocabulary words")
    return CaptionerConfig(**cfg)


def checkpoint_meta(path: Path) -> dict:
    """How a checkpoint was made (``meta``: training config, metrics, grammar)."""
    return _read(path).get("meta", {})


def checkpoint_config(path: Path) -> CaptionerConfig:
    """The model config of a checkpoint (sizes, vocabulary), without building the model."""
    return _config(_read(path), path)


def checkpoint_grammar(path: Path) -> list[str]:
    """The captions a checkpoint can say (what to decode it with): ``meta["grammar"]``, or for older
    checkpoints the grammar of the data source they record (the shipped ones: ``synthetic``)."""
    meta = checkpoint_meta(path)
    if "grammar" in meta:
        return list(meta["grammar"])
    return grammar(meta.get("train", {}).get("data", "synthetic"))


def load_checkpoint(path: Path, device: str = "cpu") -> Captioner:
    """A captioner from ``save_checkpoint``'s file, in eval mode."""
    blob = _read(path, device)
    model = Captioner(_config(blob, path)).to(device)
    model.load_state_dict(blob["state_dict"])
    return model.eval()


__all__ = ["TrainConfig", "checkpoint_config", "checkpoint_grammar", "checkpoint_meta", "evaluate_captioner",
           "load_checkpoint", "save_checkpoint", "train_captioner"]
