"""Where a CartPole run's stored captions go wrong: each stored caption against the simulator-state
caption of its step (`envs.env_captions`), by where the cart is, over the run, and the commonest
confusions. A long run's policy moves the cart to places the captioner's training streams seldom show.

    python -P benchmarks/stored_caption_errors.py runs/cartpole-200k
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.perception.grammar import Vocab  # noqa: E402
from envs.env_captions import EnvCaptioner  # noqa: E402
from memory import open_store  # noqa: E402

X_EDGES = np.linspace(-2.4, 2.4, 13)  # the cart's position bins (CartPole ends an episode beyond ±2.4)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a `thalamus run --env CartPole-v1` directory with captions")
    p.add_argument("--blocks", type=int, default=10, help="parts of the run the error is given for (default: 10)")
    args = p.parse_args()
    run = json.loads((args.run_dir / "run.json").read_text())
    vocab = Vocab(tuple(run["caption_vocab"]))
    store = open_store(args.run_dir)
    x, step, right, confusions = [], [], [], Counter()
    for i in range(store.n_episodes):
        episode, truth = store.get_episode(i), EnvCaptioner("CartPole-v1", 0.02)
        for state, tokens, t in zip(episode["obs"], episode["caption"], episode["step"]):
            said, true = vocab.decode(tokens.tolist()), truth(state)
            x.append(float(state[0]))
            step.append(int(t))
            right.append(said == true)
            if said != true:
                confusions[(true, said)] += 1
    x_a, step_a, right_a = np.array(x), np.array(step), np.array(right)
    print(f"{len(right_a):,} steps, stored caption right on {right_a.mean():.1%}")
    where = np.clip(np.digitize(x_a, X_EDGES) - 1, 0, len(X_EDGES) - 2)
    print("cart position        share of steps   right")
    for b in range(len(X_EDGES) - 1):
        mine = where == b
        if mine.any():
            print(f"  {X_EDGES[b]:+.1f} .. {X_EDGES[b + 1]:+.1f}       {mine.mean():6.1%}       {right_a[mine].mean():6.1%}")
    part = np.minimum(step_a * args.blocks // (step_a.max() + 1), args.blocks - 1)
    print("right over the run, by tenth:", " ".join(f"{right_a[part == k].mean():.0%}" for k in range(args.blocks)
                                                  if (part == k).any()))
    print("commonest confusions (truth → stored):")
    for (true, said), n in confusions.most_common(5):
        print(f"  {n:7,}  {true!r} → {said!r}")


if __name__ == "__main__":
    main()
