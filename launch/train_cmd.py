"""`thalamus train captioner`: train the perception captioner and write a checkpoint.

    thalamus train captioner --steps 5000 --device cuda --workers 12 --out captioner.pt   # as the shipped one
    thalamus train captioner --steps 200 --out /tmp/small.pt --json
    thalamus train captioner --data my_clips/ --steps 2000 --device cuda --workers 8 --out mine.pt

Data: the built-in synthetic scenes (`--data synthetic`, exact captions from the generator), renders
of a captioned environment (captions read from the simulator state): `--data env:CartPole-v1`,
`--data env:InvertedPendulum-v5` (random actions, and a controller that balances the pole while
steering the cart across the track: envs/env_captions.py), `--data env:Meta-World/TASK` or a Meta-World
sequence `--data env:mw-easy` (the scripted expert, noisy and random episodes: envs/metaworld_captions.py;
a comma list trains on several: `--data env:mw-easy,Meta-World/pick-place-v3`), or a directory of
your own captioned videos:

    my_clips/
      walk.mp4      any video OpenCV reads (.mp4 .avi .mov .mkv .webm)
      walk.jsonl    one line per caption change: {"frame": 0, "caption": "a person walks left"}
      heldout/      optional, same format: clips used only for scoring

A line means "this caption from frame i (counted from 0) until the next line's frame, or the end".
Frames ascend; frames before the first line are skipped; a caption is 1 to 11 words, any words
(the checkpoint extends its vocabulary). This is what `thalamus caption --jsonl` writes, so its output
can be corrected by hand and trained on. Scoring is at each caption segment's last frame, on
heldout/ if present, otherwise on the training clips played in other orders (a measure of fit, not
of generalisation). The checkpoint records its captions, so `thalamus caption --checkpoint` says
only those. Full format: envs/clips.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from launch import train_policy_cmd
from launch.errors import UsageError


def add_parser(sub: argparse._SubParsersAction) -> None:
    train = sub.add_parser("train", help="train a model", description="Train a model.")
    tsub = train.add_subparsers(dest="model", required=True, metavar="MODEL")
    p = tsub.add_parser("captioner", help="train the perception captioner", description=__doc__,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="synthetic", metavar="SRC",
                   help="synthetic, env:CartPole-v1, env:InvertedPendulum-v5, env:Meta-World/TASK, env:mw-easy, "
                        "env:cw10 (comma lists too), or a directory of videos with NAME.jsonl captions beside "
                        "each (format above)")
    # defaults: TrainConfig's (agent/perception/train.py); a test keeps the two the same
    p.add_argument("--steps", type=int, default=3000, metavar="N", help="optimizer steps")
    p.add_argument("--streams", type=int, default=32, metavar="N", help="parallel streams per step")
    p.add_argument("--out", type=Path, default=Path("captioner.pt"), metavar="PATH", help="checkpoint to write")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu", help="where the model trains")
    p.add_argument("--seed", type=int, default=0, help="seed of the model's weights and the training streams")
    p.add_argument("--mixer", choices=["delta", "softmax"], default="delta",
                   help="temporal layers: delta, the gated delta rule; softmax, the softmax-attention baseline")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="processes generating training frames (use several to feed a GPU)")
    p.add_argument("--eval-every", type=int, default=500, metavar="N",
                   help="score on held-out streams every N steps (0: only at the end)")
    p.add_argument("--camera", action="store_true",
                   help="train on frames as a busy live camera delivers them (skipped and repeated frames, "
                        "JPEG, light, noise); the model is told each frame's gap and also scored that way")
    p.add_argument("--init", type=Path, default=None, metavar="CHECKPOINT",
                   help="start from this captioner's weights (its sizes and words) instead of from scratch")
    p.add_argument("--frame-size", type=int, default=None, metavar="PX",
                   help="side of the frames the captioner reads, a multiple of 16; with --init, the checkpoint's "
                        "weights carry over to the new size (a smaller captioner is cheaper per frame on a CPU) "
                        "(default: --init's, else 64)")
    p.add_argument("--json", action="store_true", help="print the final metrics as one JSON object")
    p.set_defaults(func=main)
    train_policy_cmd.add_parser(tsub)


def _scored_on(data: str) -> str:
    """Check ``--data`` (a directory of clips is read and validated now) and say where it is scored."""
    from agent.perception.data import eval_data, grammar, is_clips
    from envs.clips import ClipDataError
    from envs.env_captions import env_grammar

    if data == "synthetic":
        return "held-out streams"
    if not is_clips(data):
        try:
            env_grammar(data.removeprefix("env:"))
        except ValueError as exc:  # an unknown env (naming the closest or the captioned ones), a mix of kinds
            raise UsageError(f"--data {data!r}: {exc}") from None
        return "held-out streams"
    try:
        grammar(data)
        scored = eval_data(data)
    except ClipDataError as exc:
        raise UsageError(f"--data: {exc}") from None
    return f"the clips of {scored}" if scored != data else "the training clips played in other orders"


def main(args: argparse.Namespace) -> int:
    scored_on = _scored_on(args.data)
    if args.steps < 1 or args.streams < 1 or args.eval_every < 0:
        raise UsageError(f"--steps and --streams must be positive and --eval-every not negative, got {args.steps}, "
                         f"{args.streams} and {args.eval_every}")
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from agent.perception.captioner import CaptionerConfig
    from agent.perception.train import TrainConfig, train_captioner
    from launch.display import stdout_console

    sizes = CaptionerConfig(mixer=args.mixer)  # the model's, to check --frame-size against before training
    if args.init is not None:
        from agent.perception.train import checkpoint_config

        try:
            sizes = checkpoint_config(args.init)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--init: {exc}") from None
    if args.frame_size is not None:
        try:
            sizes.with_frame_size(args.frame_size)
        except ValueError as exc:
            raise UsageError(f"--frame-size: {exc}") from None
    cfg = TrainConfig(steps=args.steps, streams=args.streams, device=args.device, seed=args.seed,
                      data=args.data, workers=args.workers, eval_every=args.eval_every, camera=args.camera,
                      init=str(args.init) if args.init else None, frame_size=args.frame_size,
                      model=CaptionerConfig(mixer=args.mixer))
    columns = (TextColumn("[bold]train captioner"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TextColumn("{task.fields[info]}"), TimeElapsedColumn())
    with Progress(*columns, disable=args.json, transient=False) as bar:
        task = bar.add_task("train", total=args.steps, info="")

        def report(step: int, m: dict) -> None:
            info = f"loss {m['loss']:.3f}" + (f"  exact {m['exact']:.1%}" if "exact" in m else "") + \
                (f"  through a busy camera {m['camera_exact']:.1%}" if "camera_exact" in m else "")
            bar.update(task, completed=step, info=info)

        metrics = train_captioner(cfg, out=args.out, progress=report)
    if args.json:
        print(json.dumps(metrics))
    else:
        counts = ("exact", "segments", "frames", "train_s", "camera_segments", "skipped_steps", "first_skipped_step")
        parts = ", ".join(f"{k} {v:.1%}" for k, v in metrics.items() if k not in counts)
        skipped = metrics["skipped_steps"]
        stdout_console().print(
            f"wrote {args.out}: exact match {metrics['exact']:.1%} over {metrics['segments']} scored frames of "
            f"{scored_on}" + (f" ({parts})" if parts else "") +
            f"; {metrics['frames']:,} training frames in {metrics['train_s']:.0f} s" +
            (f"; {skipped} steps skipped, their gradient not finite (the first: step {metrics['first_skipped_step']})"
             if skipped else ""))
    return 0
