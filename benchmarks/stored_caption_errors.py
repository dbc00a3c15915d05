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
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from agent.perception.grammar import Vocab  # noqa: E402
from envs.env_captions import EnvCaptioner  # noqa: E402
from memory import open_store  # noqa: E402

X_EDGES = np.linspace(-2.4, 2.4, 13)  # the cart's position bins (CartPole ends an episode beyond ±2.4)


@dataclass
class StoredCaptions:
    """Every stored step of a run, episode after episode: the env's state, the step, the caption stored
    and the simulator-state caption, and whether the captioner skipped the step's own frame."""

    state: np.ndarray
    step: np.ndarray
    said: list[str]
    truth: list[str]
    skipped: np.ndarray

    @property
    def right(self) -> np.ndarray:
        """Per step: the stored caption is the simulator's."""
        return np.array(self.said) == np.array(self.truth)


def stored_captions(run_dir: Path, env: str) -> StoredCaptions:
    """A run's stored captions beside the simulator-state captions of their steps (``envs.env_captions``)."""
    vocab = Vocab(tuple(json.loads((run_dir / "run.json").read_text())["caption_vocab"]))
    store = open_store(run_dir)
    episodes = [store.get_episode(i) for i in range(store.n_episodes)]
    said, truth = [], []
    for episode in episodes:
        captioner = EnvCaptioner(env, 0.02)
        said += [vocab.decode(t.tolist()) for t in episode["caption"]]
        truth += [captioner(state) for state in episode["obs"]]
    skipped = [e["caption_skipped"] if "caption_skipped" in e else np.zeros(len(e["obs"]), bool) for e in episodes]
    return StoredCaptions(np.concatenate([e["obs"] for e in episodes]), np.concatenate([e["step"] for e in episodes]),
                          said, truth, np.concatenate(skipped).astype(bool))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, help="a `thalamus run --env CartPole-v1` directory with captions")
    p.add_argument("--blocks", type=int, default=10, help="parts of the run the error is given for (default: 10)")
    args = p.parse_args()
    stored = stored_captions(args.run_dir, "CartPole-v1")
    x_a, step_a, right_a = stored.state[:, 0], stored.step, stored.right
    confusions = Counter((true, said) for true, said, ok in zip(stored.truth, stored.said, right_a) if not ok)
    print(f"{len(right_a):,} steps, stored caption right on {right_a.mean():.1%}")
    where = np.clip(np.digitize(x_a, X_EDGES) - 1, 0, len(X_EDGES) - 2)
    print("cart position        share of steps   right")
    for b in range(len(X_EDGES) - 1):
        mine = where == b
        if mine.any():
            print(f"  {X_EDGES[b]:+.1f} .. {X_EDGES[b + 1]:+.1f}       {mine.mean():6.1%}       {right_a[mine].mean():6.1%}")
    part = np.minimum(step_a * args.blocks // (step_a.max() + 1), args.blocks - 1)
    print(f"right over the run, in {args.blocks} parts:", " ".join(f"{right_a[part == k].mean():.0%}" for k in range(args.blocks)
                                                  if (part == k).any()))
    print("commonest confusions (truth → stored):")
    for (true, said), n in confusions.most_common(5):
        print(f"  {n:7,}  {true!r} → {said!r}")


if __name__ == "__main__":
    main()
