"""How much trc's router owes to the test stream's context: final accuracy of trc scored on each
task's test set played as its own stream (as `thalamus bench continual` does) beside the same model
scored on one stream that mixes every task's test samples in a seeded random order.

    .venv/bin/python benchmarks/continual_mixed.py --benchmark split-digits --seeds 3
"""

from __future__ import annotations

from envs.headless import configure; configure()  # noqa: E702  headless rendering, triton first

import argparse

import numpy as np
import torch

from agent.learner.trc import TRC
from envs.digits import digits_tasks
from launch.bench.continual import ContinualConfig, train_task


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--benchmark", default="split-digits", choices=["split-digits", "permuted-digits"])
    p.add_argument("--seeds", type=int, default=3)
    args = p.parse_args()
    torch.set_num_threads(1)
    tasks = digits_tasks(args.benchmark)
    per_task, mixed = [], []
    for seed in range(args.seeds):
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        learner = TRC(ContinualConfig(), seed)
        for i, task in enumerate(tasks):
            train_task(learner, task, i, learner.cfg, rng)
        accs = [float((learner.logits(torch.as_tensor(t.test_x)).argmax(-1).numpy() == t.test_y).mean()) for t in tasks]
        x = np.concatenate([t.test_x for t in tasks])
        y = np.concatenate([t.test_y for t in tasks])
        order = np.random.default_rng(1000 + seed).permutation(len(x))
        guess = learner.logits(torch.as_tensor(x[order])).argmax(-1).numpy()
        per_task.append(np.mean(accs))
        mixed.append(float((guess == y[order]).mean()))
        print(f"seed {seed}: per-task streams {per_task[-1]:.3f}, one mixed stream {mixed[-1]:.3f}", flush=True)
    print(f"{args.benchmark}: trc ACC per-task streams {100 * np.mean(per_task):.1f} ± {100 * np.std(per_task, ddof=1):.1f}, "
          f"mixed stream {100 * np.mean(mixed):.1f} ± {100 * np.std(mixed, ddof=1):.1f}")


if __name__ == "__main__":
    main()
