"""Decode every frame, or only when the stream's state says the scene changed? Accuracy and decodes saved.

    python -P benchmarks/decode_on_change.py --checkpoint agent/perception/checkpoints/captioner-cartpole.pt \
        --data env:CartPole-v1 --json out.json
    python -P benchmarks/decode_on_change.py --data synthetic --streams 32

Held-out streams (seeds 7,000,000 on, as benchmarks/camera_captions.py) go through the captioner; every
frame's temporal feature is decoded (the reference: what the runtime does today). Gated at threshold
τ, a stream decodes a frame only when its feature has moved by more than τ (relative L2) from the
feature it last decoded, and otherwise keeps that caption. Per τ: the share of frames decoded, the
captions equal to decoding every frame, and exact-match accuracy against the truth where the
runtime's own check scores (a segment's last frame; every env frame).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo's kernels/, not benchmarks/kernels.py
from agent.perception.data import open_batch  # noqa: E402
from agent.perception.decode import CaptionDecoding  # noqa: E402
from agent.perception.train import checkpoint_grammar, load_checkpoint  # noqa: E402

SEED = 7_000_000
THRESHOLDS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7)


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", type=Path, default=Path("agent/perception/checkpoints/captioner.pt"))
    parser.add_argument("--data", default="synthetic", help="synthetic or env:ID (default: %(default)s)")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--frames", type=int, default=480)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_checkpoint(args.checkpoint)
    decoding = CaptionDecoding(model, checkpoint_grammar(args.checkpoint), "cpu")
    batch = open_batch(args.data, [SEED + i for i in range(args.streams)], model.cfg.frame_size)
    state = model.initial_state(args.streams)
    feats, tokens, truths = [], [], []
    for _ in range(-(-args.frames // 64)):
        frames, truth = batch.next(64)
        f, state = model(torch.as_tensor(frames), state)
        feats.append(f)
        tokens.append(decoding.tokens(f.flatten(0, 1)).view(*f.shape[:2], -1))
        truths += [list(col) for col in zip(*truth)]  # [T][B]
    feats, tokens = torch.cat(feats, 1), torch.cat(tokens, 1)  # [B, T, D], [B, T, L]
    vocab = model.vocab
    texts = [[vocab.decode(row.tolist()) for row in stream] for stream in tokens]  # [B][T]
    rows = []
    for tau in THRESHOLDS:
        decoded = same = hits = scored = 0
        for b in range(args.streams):
            last_feat, last_text = None, None
            for t in range(feats.shape[1]):
                f = feats[b, t]
                if last_feat is None or (f - last_feat).norm() > tau * last_feat.norm():
                    last_feat, last_text = f, texts[b][t]
                    decoded += 1
                same += last_text == texts[b][t]
                if truths[t][b].is_last:
                    scored += 1
                    hits += last_text == truths[t][b].caption
        n = args.streams * feats.shape[1]
        rows.append({"tau": tau, "decoded": decoded / n, "same_as_every_frame": same / n, "exact": hits / scored,
                     "scored": scored})
        print(f"τ {tau:<5} decoded {decoded / n:6.1%}  same as decoding every frame {same / n:6.1%}  "
              f"exact {hits / scored:6.1%} of {scored}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"checkpoint": str(args.checkpoint), "data": args.data,
                                         "streams": args.streams, "frames": args.frames, "seed": SEED,
                                         "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
