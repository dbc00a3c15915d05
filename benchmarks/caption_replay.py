"""Are a run's stored captions the captioner's words for its stored frames? Replays every env's frames, in
step order, through a fresh eager captioner (one stream an env, bf16 convolutions where the CaptionActor
would use them) and counts the steps whose stored caption it gives again: a check that the CaptionActor
(compiled or not, skipping or not) stored what the model says.

    python -P benchmarks/caption_replay.py runs/cartpole-200k
    python -P benchmarks/caption_replay.py runs/x --checkpoint agent/perception/checkpoints/captioner-cartpole.pt
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.perception.live import LiveCaptioner, cpu_has_bf16  # noqa: E402
from memory import open_store  # noqa: E402


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a thalamus run's directory (its store keeps frames and captions)")
    p.add_argument("--checkpoint", type=Path, help="the captioner (default: the one run.json names)")
    args = p.parse_args()
    torch.set_num_threads(1)
    checkpoint = args.checkpoint or Path(json.loads((args.run_dir / "run.json").read_text())["config"]["captioner"])
    store = open_store(args.run_dir)
    episodes = [store.get_episode(i) for i in range(store.n_episodes)]
    env, step = (np.concatenate([e[k] for e in episodes]) for k in ("env", "step"))
    frames, stored = (np.concatenate([e[k] for e in episodes]) for k in ("frame", "caption"))
    skipped = np.concatenate([e["caption_skipped"] for e in episodes])
    streams = [np.flatnonzero(env == k)[np.argsort(step[env == k], kind="stable")] for k in range(int(env.max()) + 1)]
    length = min(len(s) for s in streams)
    captioner = LiveCaptioner(checkpoint, streams=len(streams), cpu_bf16=cpu_has_bf16())
    same, read = 0, 0
    for t in range(length):
        rows = np.array([s[t] for s in streams])
        mine = ~skipped[rows]  # a skipped step stores a later frame's caption: not this frame's
        same += int((captioner.tokens(frames[rows]) == stored[rows]).all(-1)[mine].sum())
        read += int(mine.sum())
    print(f"{len(streams)} streams × {length} frames: the replay gives the stored caption on {same:,} of {read:,} "
          f"captioned steps ({same / max(read, 1):.4%})")


if __name__ == "__main__":
    main()
