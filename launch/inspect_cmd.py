"""`thalamus memory inspect RUN_DIR`: what a run's store holds (episodes, and the learner's cache and
spectral memories when it saved them), read with the public read API.

    thalamus memory inspect runs/CartPole-v1-20261128-140000
    thalamus memory inspect runs/reacher --json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from memory import MemoryBlock


def add_parser(sub: argparse._SubParsersAction) -> None:
    mem = sub.add_parser("memory", help="inspect what runs remember", description="Inspect run stores.")
    msub = mem.add_subparsers(dest="memory_cmd", required=True, metavar="COMMAND")
    p = msub.add_parser("inspect", help="episodes, steps, arrays, sizes and learner memory of a run's store",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (or its store.zarr)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.set_defaults(func=main)


def report(run_dir: Path) -> dict[str, Any]:
    """Everything `inspect` shows, as plain data; "memory_step", "cache" and "spectral" only if the learner saved."""
    from memory import load_learner_memory, open_store

    store = open_store(run_dir)
    lengths = store.episode_lengths
    returns = store.episode_returns() if "reward" in store.keys else np.zeros(len(lengths))
    r = {
        "store": str(store.path), "format": "thalamus-store", "version": store.version,
        "episodes": store.n_episodes, "steps": store.n_steps,
        "uncommitted_rows": store.dropped_rows,
        "episode_lengths": lengths.tolist(), "episode_returns": returns.tolist(),
        "bytes_on_disk": store.bytes_on_disk,
        "arrays": [{"path": a.path, "shape": list(a.shape), "dtype": a.dtype, "chunks": list(a.chunks),
                    "bytes_on_disk": a.bytes_on_disk, "compressors": a.compressors} for a in store.arrays()],
    }
    memory = load_learner_memory(store.path)
    if memory is not None:
        r["memory_step"] = memory.step
        r["cache"] = None if memory.cache is None else _cache_summary(memory.cache)
        r["spectral"] = [_column_summary(m, block) for m, block in enumerate(memory.spectral)]
    return r


def _arrays(block: MemoryBlock) -> dict[str, Any]:
    return {name: {"shape": list(a.shape), "dtype": str(a.dtype)} for name, a in block.arrays.items()}


def _cache_summary(cache: MemoryBlock) -> dict[str, Any]:
    """Entries (attrs' size, else the rows stored), capacity, writes, evictions, policy, arrays and all attrs."""
    rows = len(next(iter(cache.arrays.values())))
    a = cache.attrs
    return {"entries": a.get("size", rows), "capacity": a.get("capacity"), "writes": a.get("writes"),
            "evictions": a.get("evictions"), "policy": a.get("policy"), "arrays": _arrays(cache), "attrs": a}


def _column_summary(m: int, block: MemoryBlock) -> dict[str, Any]:
    """One column's rank and dim (attrs, else the basis' shape), energy captured, consolidation, updates."""
    a = block.attrs
    basis = block.arrays.get("basis")
    shape = basis.shape if basis is not None and basis.ndim == 2 else (None, None)
    return {"column": m, "rank": a.get("rank", shape[1]), "dim": a.get("dim", shape[0]),
            "energy_captured": a.get("energy_captured"), "consolidation": a.get("consolidation"),
            "updates": a.get("updates"), "arrays": _arrays(block), "attrs": a}


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
    if r["arrays"]:  # a store without episodes/ (only learner memory so far) has none
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
    if "memory_step" in r:
        _print_memory(console, r)
    return 0


def _text(value: Any, spec: str = "") -> str:
    """A value of the learner's attrs for a table: '-' if it is missing, formatted with spec if it is a number."""
    if value is None:
        return "-"
    if spec and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, spec)
    return str(value)


def _print_memory(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    console.print(f"[bold]learner memory[/] saved at step {r['memory_step']:,}")
    c = r["cache"]
    if c is None:
        console.print("cache  none")
    else:
        console.print(f"cache  {_text(c['entries'], ',')} / {_text(c['capacity'], ',')} entries   "
                      f"writes {_text(c['writes'], ',')}   evictions {_text(c['evictions'], ',')}   "
                      f"policy {_text(c['policy'])}")
    columns = Table("column", "rank", "dim", "energy captured", "consolidation", "updates",
                    title=f"spectral memory ({len(r['spectral'])} columns)", title_justify="left")
    for col in r["spectral"]:
        columns.add_row(str(col["column"]), _text(col["rank"]), _text(col["dim"]),
                        _text(col["energy_captured"], ".3f"), _text(col["consolidation"], ".3f"),
                        _text(col["updates"], ","))
    console.print(columns)
