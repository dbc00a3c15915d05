"""`thalamus bench caption`: the captioner against a softmax-attention captioner of the same size.

    thalamus bench caption                         # accuracy, then frames/s and memory at 1k, 10k, 100k frames
    thalamus bench caption --lengths 1000,10000 --json out.json

Both checkpoints ship in `agent/perception/checkpoints/` and were trained the same way
(`thalamus train captioner [--mixer softmax] --steps 5000`). Speed is batch 1, one thread.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from launch.errors import UsageError

CHECKPOINTS = Path(__file__).resolve().parents[1] / "agent" / "perception" / "checkpoints"


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run a benchmark side by side with its baseline",
                           description="Benchmarks, each beside its baseline.")
    bsub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    p = bsub.add_parser("caption", help="captioner accuracy, frames/s and memory vs softmax attention",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="1000,10000,100000", help="stream lengths to time at (frames)")
    p.add_argument("--streams", type=int, default=32, help="held-out streams for accuracy (480 frames each)")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: fastest at batch 1)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here")
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    try:
        lengths = tuple(int(x) for x in args.lengths.split(","))
    except ValueError:
        raise UsageError(f"--lengths must be comma-separated frame counts, got {args.lengths!r}") from None
    if any(n < 301 for n in lengths) or list(lengths) != sorted(lengths):
        raise UsageError(f"--lengths must be increasing and each > 300 frames, got {args.lengths!r}")
    import torch
    from rich.table import Table

    from agent.perception.bench import accuracy, speed_along_stream
    from launch.display import stdout_console

    torch.set_num_threads(args.threads)
    console = stdout_console()
    models = {"ours (gated delta rule)": CHECKPOINTS / "captioner.pt",
              "softmax attention (KV cache)": CHECKPOINTS / "captioner-softmax.pt"}
    results = {}
    for name, path in models.items():
        console.print(f"[bold]{name}[/]: accuracy on {args.streams} held-out streams ...")
        acc = accuracy(path, args.streams, 480)
        console.print(f"  speed along one stream at {', '.join(map(str, lengths))} frames ...")
        results[name] = {"accuracy": acc, "speed": speed_along_stream(path, lengths)}
    table = Table("model", "exact", "color", "shape", "motion",
                  *[f"fps @{n:,}" for n in lengths], *[f"state MB @{n:,}" for n in lengths],
                  title="captioner, batch 1", title_justify="left")
    for name, r in results.items():
        a, s = r["accuracy"], r["speed"]
        table.add_row(name, f"{a['exact']:.1%}", f"{a['color']:.1%}", f"{a['shape']:.1%}", f"{a['motion']:.1%}",
                      *[f"{x['fps']:,.0f}" for x in s], *[f"{x['state_mb']:.2f}" for x in s])
    console.print(table)
    for name, r in results.items():
        s = r["speed"]
        console.print(f"{name}: fps at {lengths[-1]:,} / fps at {lengths[0]:,} = {s[-1]['fps'] / s[0]['fps']:.2f}; "
                      f"max RSS {s[-1]['max_rss_mb']:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0
