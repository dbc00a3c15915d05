"""`thalamus bench caption`: the captioner against a softmax-attention captioner of the same size, read
densely and sparsely (the cache blocks holding top-p of the block-mean scores, at most top-k, and
the newest; `--sparse-*`).

    thalamus bench caption                         # accuracy, then frames/s, memory, captions at 1k, 10k, 100k frames
    thalamus bench caption --lengths 1000,10000 --json out.json
    thalamus bench caption --streams auto --device cuda     # the most live streams one GPU keeps at 30 fps

Both checkpoints ship in `agent/perception/checkpoints/` and were trained the same way
(`thalamus train captioner [--mixer softmax] --steps 5000`). Along one stream, speed is batch 1 on
one thread. With `--streams N,M,...` (or `auto`: double N until a stream gets under `--fps`, then
bisect), N independent streams, each with its own state, go through one model batched, and the
table gives the frames/s every stream gets.
"""

from __future__ import annotations

import argparse
import json
import math
from dataclasses import asdict
from pathlib import Path

from agent.config import SparseRead
from launch import continual_bench_cmd, pipeline_bench_cmd, policy_bench_cmd
from launch.errors import UsageError

CHECKPOINTS = Path(__file__).resolve().parents[1] / "agent" / "perception" / "checkpoints"
OURS, SOFTMAX, SPARSE = "ours (gated delta rule)", "softmax attention (KV cache)", "sparse softmax (kept blocks)"
MODELS = {OURS: CHECKPOINTS / "captioner.pt", SOFTMAX: CHECKPOINTS / "captioner-softmax.pt",
          SPARSE: CHECKPOINTS / "captioner-softmax.pt"}  # the sparse one reads the softmax one's cache sparsely


def add_parser(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="run a benchmark side by side with its baseline",
                           description="Benchmarks, each beside its baseline.")
    bsub = bench.add_subparsers(dest="bench", required=True, metavar="BENCH")
    continual_bench_cmd.add_parser(bsub)
    pipeline_bench_cmd.add_parser(bsub)
    policy_bench_cmd.add_parser(bsub)
    p = bsub.add_parser("caption", help="captioner accuracy, frames/s and memory vs softmax attention",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--lengths", default="1000,10000,100000",
                   help="stream lengths to time at, in frames (default: %(default)s)")
    p.add_argument("--eval-streams", type=int, default=32, metavar="N",
                   help="held-out streams for accuracy, 480 frames each (default: %(default)s)")
    p.add_argument("--streams", metavar="N,M,...|auto",
                   help="instead: time N independent streams batched through one model, at each N given "
                        "(default: none; one stream, at each of --lengths)")
    p.add_argument("--age", type=int, default=18_000, metavar="FRAMES",
                   help="with --streams: frames every stream has seen before timing (default: %(default)s, "
                        "10 minutes at 30 fps; a softmax cache keeps them all, preallocated)")
    p.add_argument("--fps", type=float, default=30.0,
                   help="with --streams: the frames/s each stream must get (default: %(default)s)")
    p.add_argument("--bf16", action="store_true",
                   help="with --streams: run each step under bf16 autocast, both models (default: fp32)")
    p.add_argument("--no-graph", dest="graph", action="store_false",
                   help="with --streams on cuda: step eagerly instead of replaying one CUDA graph a step "
                        "(default: a graph, where the model allows one: ours; a softmax cache grows)")
    read = SparseRead()
    p.add_argument("--sparse-top-k", type=int, default=read.top_k, metavar="K",
                   help="sparse softmax: at most this many cache blocks besides the newest (default: %(default)s)")
    p.add_argument("--sparse-top-p", type=float, default=read.top_p, metavar="P",
                   help="sparse softmax: the blocks holding this much of the block-mean attention (default: %(default)s)")
    p.add_argument("--sparse-block", type=int, default=read.block, metavar="FRAMES",
                   help="sparse softmax: frames a cache block (a power of two ≥ 16) (default: %(default)s)")
    p.add_argument("--sparse-local", type=int, default=read.local, metavar="N",
                   help="sparse softmax: the newest blocks always read (default: %(default)s)")
    p.add_argument("--compile", action="store_true",
                   help="with --streams on cuda: the model's step through torch.compile (ours; a softmax "
                        "cache grows) (default: off)")
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                   help="where the models run (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default: %(default)s, fastest at batch 1)")
    p.add_argument("--json", type=Path, metavar="PATH", help="also write the results here (default: none)")
    p.set_defaults(func=main)


def _stream_counts(text: str) -> list[int] | None:
    """``auto`` → None; ``1,64,256`` → [1, 64, 256]."""
    if text == "auto":
        return None
    try:
        counts = [int(x) for x in text.split(",")]
    except ValueError:
        raise UsageError(f"--streams must be 'auto' or comma-separated stream counts, got {text!r}") from None
    if any(n < 1 for n in counts):
        raise UsageError(f"--streams counts must be positive, got {text!r}")
    return counts


def _sparse_read(args: argparse.Namespace) -> SparseRead:
    """The ``--sparse-*`` flags as a :class:`SparseRead`, or a one-line UsageError."""
    if args.sparse_top_k < 1 or args.sparse_local < 0:
        raise UsageError(f"--sparse-top-k must be ≥ 1 and --sparse-local ≥ 0, got {args.sparse_top_k} and "
                         f"{args.sparse_local}")
    if not 0 < args.sparse_top_p <= 1:
        raise UsageError(f"--sparse-top-p must be in (0, 1], got {args.sparse_top_p}")
    if args.sparse_block < 16 or args.sparse_block & (args.sparse_block - 1):
        raise UsageError(f"--sparse-block must be a power of two ≥ 16, got {args.sparse_block}")
    return SparseRead(args.sparse_top_k, args.sparse_top_p, args.sparse_block, args.sparse_local)


def main(args: argparse.Namespace) -> int:
    counts = _stream_counts(args.streams) if args.streams else []
    try:
        lengths = tuple(int(x) for x in args.lengths.split(","))
    except ValueError:
        raise UsageError(f"--lengths must be comma-separated frame counts, got {args.lengths!r}") from None
    if args.age < 1:
        raise UsageError(f"--age must be at least 1 frame, got {args.age}")
    if any(n < 301 for n in lengths) or list(lengths) != sorted(lengths):
        raise UsageError(f"--lengths must be increasing and each > 300 frames, got {args.lengths!r}")
    args.read = _sparse_read(args)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: torch sees no CUDA GPU on this machine; use --device cpu")
    torch.set_num_threads(args.threads)
    results = _many_streams(args, counts) if args.streams else _along_one_stream(args, lengths)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _along_one_stream(args: argparse.Namespace, lengths: tuple[int, ...]) -> dict:
    from rich.table import Table

    from launch.bench.caption import accuracy, speed_along_stream
    from launch.display import stdout_console

    console = stdout_console()
    results = {}
    for name, path in MODELS.items():
        read = args.read if name == SPARSE else None
        if read is None:
            console.print(f"[bold]{name}[/]: accuracy on {args.eval_streams} held-out streams ...")
            acc = accuracy(path, args.eval_streams, 480)
        else:  # fresh streams go through the dense chunked pass, which the sparse read leaves as it is
            acc = results[SOFTMAX]["accuracy"]
        console.print(f"[bold]{name}[/]: speed and captions along one stream at {', '.join(map(str, lengths))} frames ...")
        results[name] = {"accuracy": acc, "speed": speed_along_stream(path, lengths, device=args.device, sparse=read),
                         "sparse_read": asdict(read) if read else None}
    table = Table("model", "exact (fresh)", "color", "shape", "motion",
                  *[f"exact @{n:,}" for n in lengths], *[f"fps @{n:,}" for n in lengths],
                  *[f"state MB @{n:,}" for n in lengths], title=f"captioner, batch 1, {args.device}", title_justify="left")
    for name, r in results.items():
        a, s = r["accuracy"], r["speed"]
        table.add_row(name, f"{a['exact']:.1%}", f"{a['color']:.1%}", f"{a['shape']:.1%}", f"{a['motion']:.1%}",
                      *[f"{x['exact']:.0%} of {x['segments']}" for x in s], *[f"{x['fps']:,.0f}" for x in s],
                      *[f"{x['state_mb']:.2f}" for x in s])
    console.print(table)
    for name, r in results.items():
        s = r["speed"]
        console.print(f"{name}: fps at {lengths[-1]:,} / fps at {lengths[0]:,} = {s[-1]['fps'] / s[0]['fps']:.2f}; "
                      f"max RSS {s[-1]['max_rss_mb']:.0f} MB")
    return results


def _many_streams(args: argparse.Namespace, counts: list[int] | None) -> dict:
    from rich.table import Table

    from agent.perception.serve import ServeConfig
    from launch.bench.caption import max_live_streams, served_accuracy, streams_at
    from launch.display import stdout_console

    console = stdout_console()
    serve = ServeConfig(bf16=args.bf16, graph=args.graph, compile=args.compile)
    results = {}
    for name, path in MODELS.items():
        read = args.read if name == SPARSE else None
        console.print(f"[bold]{name}[/]: streams {args.age:,} frames old, batched on {args.device}"
                      f"{', bf16' if args.bf16 else ''}{', compiled' if args.compile else ''} ...")

        def report(row: dict) -> None:
            console.print(f"  {row['streams']:6d} streams: " + ("out of memory" if row.get("oom") else
                          f"{row['fps_per_stream']:8.1f} fps each, step p99 {row['step_ms_p99']:.1f} ms"))

        if counts is None:
            best, rows = max_live_streams(path, args.device, fps=args.fps, age=args.age, report=report, serve=serve,
                                          sparse=read)
        else:
            rows = streams_at(path, counts, args.device, args.age, report=report, serve=serve, sparse=read)
            live = [r["streams"] for r in rows if r["fps_per_stream"] >= args.fps]
            best = max(live) if live else 0
        exact = served_accuracy(path, args.device, serve, sparse=read)
        console.print(f"  exact captions, 256 held-out streams stepped the same way: {exact:.1%}")
        results[name] = {"max_streams_at_fps": best, "fps": args.fps, "age": args.age, "rows": rows,
                         "exact": exact, "serve": asdict(serve), "sparse_read": asdict(read) if read else None}
    table = Table("model", "streams", "fps / stream", "frames/s", "step p50 ms", "step p99 ms", "state MB", "GPU GB",
                  title=f"captioner, N batched streams {args.age:,} frames old, {args.device}", title_justify="left")
    for name, r in results.items():
        for row in r["rows"]:
            table.add_row(name, f"{row['streams']:,}", f"{row['fps_per_stream']:,.1f}", f"{row['frames_per_s']:,.0f}",
                          f"{row['step_ms_p50']:.2f}", f"{row['step_ms_p99']:.2f}", f"{row['state_mb']:.1f}",
                          "–" if math.isnan(row["gpu_gb"]) else f"{row['gpu_gb']:.1f}")
    console.print(table)
    for name, r in results.items():
        console.print(f"{name}: at most {r['max_streams_at_fps']:,} streams get {args.fps:g} frames/s each")
    ours = results[OURS]["max_streams_at_fps"]
    for name in (SOFTMAX, SPARSE):
        if results[name]["max_streams_at_fps"]:
            console.print(f"ours / {name}: {ours / results[name]['max_streams_at_fps']:.2f}× the live streams")
    return results
