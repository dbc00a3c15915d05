"""Captioners on held-out streams delivered three ways: every frame, with frames skipped as a busy
machine skips them, and through a rough camera (skips, repeats, JPEG, light, noise).

    python benchmarks/camera_captions.py --data env:CartPole-v1 --checkpoints OLD.pt NEW.pt
    python benchmarks/camera_captions.py --data synthetic --streams 64 --json out.json

Every checkpoint sees the same streams in the same order (by default seeds 7,000,000 on, which no
training or training-time check uses; `--seed 7500000` is a second held-out set) and the same skips
(`agent/perception/camera.py`, seeded); scored with `evaluate_captioner` at each segment's last
delivered frame (every delivered frame of an env). ``--bf16`` also scores each checkpoint with its
convolutions in bf16, as the CaptionActor runs them on a CPU that has bf16 instructions; ``--by-gap``
scores the busy machine's frames by how many source frames passed since the one before; ``--play``
picks how an env's episodes are played (``mixed``, the training's: random and steered across the track;
``random``, the only kind before 2026-12-05; ``expert``).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from dataclasses import asdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.camera import CameraConfig  # noqa: E402
from agent.perception.data import open_batch  # noqa: E402
from agent.perception.decode import CaptionDecoding  # noqa: E402
from agent.perception.train import checkpoint_grammar, evaluate_captioner, load_checkpoint  # noqa: E402
from envs.env_captions import PLAYS  # noqa: E402

SEED = 7_000_000
CONDITIONS = {
    "every frame": None,
    "busy machine (skips only)": CameraConfig(repeat=0.0, jpeg_share=0.0, brightness=0.0, contrast=(1.0, 1.0), noise=0.0),
    "rough camera (training's)": CameraConfig(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="env:CartPole-v1", help="synthetic or env:ID")
    parser.add_argument("--checkpoints", type=Path, nargs="+", required=True)
    parser.add_argument("--streams", type=int, default=32)
    parser.add_argument("--frames", type=int, default=480)
    parser.add_argument("--seed", type=int, default=SEED, help="first stream seed (default: %(default)s)")
    parser.add_argument("--bf16", action="store_true",
                        help="also score each checkpoint with its convs folded and in bf16 (LiveCaptioner's CPU path)")
    parser.add_argument("--by-gap", action="store_true",
                        help="also score each frame of the busy-machine streams by its gap (an env's frames only)")
    parser.add_argument("--play", default="mixed", choices=PLAYS,
                        help="how an env's episodes are played (envs/env_captions.py; default: %(default)s, "
                             "the training's; before 2026-12-05 CartPole streams were all random)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seeds = [args.seed + i for i in range(args.streams)]
    rows = []
    for name, camera in CONDITIONS.items():
        for path, bf16 in [(p, b) for p in args.checkpoints for b in ([False, True] if args.bf16 else [False])]:
            model = load_checkpoint(path)
            if bf16:
                model.encoder.fold_batch_norm(cpu_bf16=True)
            m = evaluate_captioner(model, seeds, args.frames, torch.device("cpu"), data=args.data,
                                   captions=checkpoint_grammar(path), camera=camera, play=args.play)
            row = {"condition": name, "checkpoint": str(path), "bf16_convs": bf16, "exact": m["exact"],
                   "scored": m["segments"], "camera": None if camera is None else asdict(camera)}
            rows.append(row)
            label = f"{path}{' (bf16 convs)' if bf16 else ''}"
            print(f"{name:28s} {label:72s} exact {m['exact']:.1%} of {m['segments']}", flush=True)
    by_gap = {str(path): exact_by_gap(path, seeds, args.frames, args.data, args.play) for path in args.checkpoints} \
        if args.by_gap else None
    if args.json:
        args.json.write_text(json.dumps({"data": args.data, "streams": args.streams, "frames": args.frames,
                                         "seed": args.seed, "play": args.play, "results": rows, "by_gap": by_gap}, indent=1))


def exact_by_gap(path: Path, seeds: list[int], n_frames: int, data: str, play: str) -> dict:
    """Every frame of the busy-machine streams scored by its gap (source frames since the one before it):
    where the skipped-frame errors are, and the captions most often taken for others."""
    model = load_checkpoint(path).eval()
    decoding = CaptionDecoding(model, checkpoint_grammar(path), "cpu")
    batch = open_batch(data, seeds, model.cfg.frame_size, CONDITIONS["busy machine (skips only)"], play)
    state = model.initial_state(len(seeds))
    right: Counter[int] = Counter()
    seen: Counter[int] = Counter()
    confused: Counter[tuple[str, str]] = Counter()
    with torch.no_grad():
        for _ in range(math.ceil(n_frames / 64)):
            frames, truths = batch.next(64)
            gaps = torch.tensor([[t.gap for t in stream] for stream in truths])
            feats, state = model(torch.as_tensor(frames), state, gaps)
            for truth, got in zip((t for stream in truths for t in stream), decoding.greedy(feats.flatten(0, 1))):
                seen[truth.gap] += 1
                right[truth.gap] += got == truth.caption
                confused[(truth.caption, got)] += got != truth.caption
    out = {"exact_by_gap": {g: right[g] / seen[g] for g in sorted(seen)}, "frames_by_gap": dict(sorted(seen.items())),
           "confusions": [[truth, got, n] for (truth, got), n in confused.most_common(6) if n]}
    print(f"{path} by gap: " + ", ".join(f"{g}: {x:.1%} of {seen[g]}" for g, x in out["exact_by_gap"].items()))
    for truth, got, n in out["confusions"]:
        print(f"  {n:4d}  {truth!r} read as {got!r}")
    return out


if __name__ == "__main__":
    main()
