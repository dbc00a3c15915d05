"""`thalamus memory inspect RUN_DIR`: what a run's store holds, read with the public read API.

    thalamus memory inspect runs/CartPole-v1-20261128-140000
    thalamus memory inspect runs/reacher --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np


def add_parser(sub: argparse._SubParsersAction) -> None:
    mem = sub.add_parser("memory", help="inspect what runs remember", description="Inspect run stores.")
    msub = mem.add_subparsers(dest="memory_cmd", required=True, metavar="COMMAND")
    p = msub.add_parser("inspect", help="episodes, steps, arrays and sizes of a run's store",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (or its store.zarr)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=main)


def report(run_dir: Path) -> dict[str, Any]:
    """Everything `inspect` shows, as plain data."""
    from memory import open_store

    store = open_store(run_dir)
    lengths = store.episode_lengths
    returns = store.episode_returns() if "reward" in store.keys else np.zeros(len(lengths))
    return {
        "store": str(store.path), "format": "thalamus-store", "version": store.version,
        "episodes": store.n_episodes, "steps": store.n_steps,
        "uncommitted_rows": store.dropped_rows,
        "episode_lengths": lengths.tolist(), "episode_returns": returns.tolist(),
        "bytes_on_disk": store.bytes_on_disk,
        "arrays": [{"path": a.path, "shape": list(a.shape), "dtype": a.dtype, "chunks": list(a.chunks),
                    "bytes_on_disk": a.bytes_on_disk, "compressors": a.compressors} for a in store.arrays()],
    }


def main(args: argparse.Namespace) -> int:
    r = report(args.run_dir)
    if args.json:
        print(json.dumps(r))
        return 0
    from rich.table import Table

    from launch.display import stdout_console

    console = stdout_console()
    lengths, returns = np.asarray(r["episode_lengths"]), np.asarray(r["episode_returns"])
    console.print(f"[bold]{r['store']}[/]  format {r['format']} v{r['version']}  "
                  f"{r['bytes_on_disk'] / 2**20:.2f} MiB on disk")
    console.print(f"episodes {r['episodes']}   steps {r['steps']:,}   "
                  f"uncommitted rows {r['uncommitted_rows']}")
    if len(lengths):
        console.print(f"episode length min/mean/max {lengths.min()}/{lengths.mean():.1f}/{lengths.max()}   "
                      f"return min/mean/max {returns.min():.1f}/{returns.mean():.1f}/{returns.max():.1f}")
    arrays = Table("array", "shape", "dtype", "chunks", "on disk", "codecs", title="arrays", title_justify="left")
    for a in r["arrays"]:
        arrays.add_row(a["path"], str(tuple(a["shape"])), a["dtype"], str(tuple(a["chunks"])),
                       f"{a['bytes_on_disk'] / 2**10:,.1f} KiB", a["compressors"])
    console.print(arrays)
    shown = min(len(lengths), 20)
    episodes = Table("episode", "length", "return", title=f"last {shown} episodes", title_justify="left")
    for i in range(len(lengths) - shown, len(lengths)):
        episodes.add_row(str(i), str(lengths[i]), f"{returns[i]:.2f}")
    console.print(episodes)
    return 0
