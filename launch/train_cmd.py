"""`thalamus train captioner`: train the perception captioner and write a checkpoint.

    thalamus train captioner --steps 3000 --device cuda --out agent/perception/checkpoints/captioner.pt
    thalamus train captioner --steps 200 --out /tmp/small.pt --json

Data: the built-in synthetic scenes (`--data synthetic`, exact captions from the generator), or renders
of a captioned environment (`--data env:CartPole-v1`, `--data env:InvertedPendulum-v5`: captions read
from the simulator state, random actions).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from launch.errors import UsageError



def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a model", description="Train a model.")
    tsub = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    p = tsub.add_parser("captioner", help="train the perception captioner", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", help="synthetic (default), env:CartPole-v1 or env:InvertedPendulum-v5")
    p.add_argument("--steps", type=int, default=3000, metavar="N", help="optimizer steps (default 3000)")
    p.add_argument("--streams", type=int, default=32, metavar="N", help="parallel scene streams per step")
    p.add_argument("--out", type=Path, default=Path("captioner.pt"), metavar="PATH", help="checkpoint to write")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixer", choices=["delta", "softmax"], default="delta",
                   help="temporal layers: gated delta rule (default) or the softmax-attention baseline")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes generating training frames (default 1; use several to feed a GPU)")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    from envs.env_captions import CAPTIONED_ENVS

    sources = ["synthetic", *(f"env:{e}" for e in CAPTIONED_ENVS)]
    if args.data not in sources:
        raise UsageError(f"--data {args.data!r} is not available; choose one of: {', '.join(sources)}")
    if args.steps < 1 or args.streams < 1:
        raise UsageError(f"--steps and --streams must be positive, got {args.steps} and {args.streams}")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.perception.captioner import CaptionerConfig
    from agent.perception.train import TrainConfig, train_captioner
    from launch.display import stdout_console

    cfg = TrainConfig(steps=args.steps, streams=args.streams, device=args.device, seed=args.seed,
                      data=args.data, workers=args.workers, model=CaptionerConfig(mixer=args.mixer))
    columns = (TextColumn("[bold]train captioner"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, disable=args.json, transient=False) as bar:
        task = bar.add_task("train", total=args.steps, info="")

        def report(step: int, m: dict) -> None:
            info = f"loss {m['loss']:.3f}" + (f"  exact {m['exact']:.1%}" if "exact" in m else "")
            bar.update(task, completed=step, info=info)

        metrics = train_captioner(cfg, out=args.out, progress=report)
    if args.json:
        print(json.dumps(metrics))
    else:
        parts = ", ".join(f"{k} {v:.1%}" for k, v in metrics.items() if k not in ("exact", "segments", "frames",
                                                                                  "train_s"))
        stdout_console().print(
            f"wrote {args.out}: exact match {metrics['exact']:.1%} over {metrics['segments']} held-out scored "
            f"frames ({parts}); {metrics['frames']:,} training frames in {metrics['train_s']:.0f} s")
    return 0
