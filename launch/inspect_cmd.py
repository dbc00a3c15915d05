"""`thalamus memory inspect RUN_DIR`: what a run's store holds (episodes, captions in words, a task
sequence task by task, and the learner's cache and spectral memories when it saved them), and whether it
is damaged, read with the public read API.

    thalamus memory inspect runs/CartPole-v1-20261128-140000
    thalamus memory inspect runs/reacher --json
    thalamus memory inspect runs/reacher --verify     # read every chunk of every array, frames too

Without --verify, the episode index, rewards, captions and the learner's memory are read whole; --verify
reads every chunk of every array, frames too. Exit code 0: everything read is whole; 1: the store is damaged
(the report says what still reads and one line on stderr says what is not), or the run never started,
or there is no store to read (one line on stderr).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from memory import EpisodeStore, MemoryBlock, StoreCheck

SHOWN_CAPTIONS = 5  # most frequent captions listed
SHOWN_SEGMENTS = 8  # caption changes of one episode printed (the JSON has them all)


def add_parser(sub: argparse._SubParsersAction) -> None:
    mem = sub.add_parser("memory", help="inspect what runs remember", description="Inspect run stores.")
    msub = mem.add_subparsers(dest="memory_cmd", required=True, metavar="COMMAND")
    p = msub.add_parser("inspect", help="episodes, steps, arrays, sizes, damage and learner memory of a run's store",
                        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (or its store.zarr)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object (default: tables)")
    p.add_argument("--verify", action="store_true",
                   help="read every chunk of every array, and report each damaged one (default: only the "
                        "episode index, rewards and captions are read)")
    p.set_defaults(func=main)
    from launch import export_cmd

    export_cmd.add_parser(msub)


def never_started(run_dir: Path) -> dict[str, Any] | None:
    """A run dir with a run.json and no store: what run.json says of the run that never started; else None."""
    from memory import read_manifest
    from memory.layout import STORE_DIR
    from memory.manifest import MANIFEST

    if not (run_dir / MANIFEST).is_file() or (run_dir / STORE_DIR).exists():
        return None
    manifest = read_manifest(run_dir)
    return {"run_dir": str(run_dir), "started": False, "status": manifest.get("status"),
            "ended": manifest.get("ended"), "error": manifest.get("error")}


def _never_started_line(r: dict[str, Any]) -> str:
    how = f"ended {r['ended']}" if r["ended"] else "never ended"
    if r["error"]:
        how += f" ({r['error']})"
    hint = (" (it may still be starting, or it stopped before recording a step)"
            if r["status"] == "running" and not r["ended"] else "")
    return (f"'{r['run_dir']}' is a run that never started: run.json says status {r['status']}, {how}, "
            f"and there is no store.zarr{hint}")


def report(run_dir: Path, verify: bool = False) -> dict[str, Any]:
    """Everything `inspect` shows, as plain data (see main). "memory_step", "cache" and "spectral" only if the
    learner saved; "captions" only with a caption column; "tasks" only for more than one task."""
    from memory import StoreError, load_learner_memory, open_store

    store = open_store(run_dir)
    manifest = _manifest(store.path.parent)
    small = [key for key in ("reward", "caption") if key in store.keys]
    check = store.check(None if verify else small, keep=small)
    lengths, tasks = store.episode_lengths, store.episode_tasks
    returns = _returns(store, check)
    damaged = [{"array": d.array, "chunk": list(d.chunk), "rows": list(d.rows), "error": d.error}
               for d in check.damage]
    intact = check.intact()
    r: dict[str, Any] = {
        "store": str(store.path), "format": "thalamus-store", "version": store.version,
        "status": "ok", "verified": verify, "damaged": damaged,
        "episodes": store.n_episodes, "steps": store.n_steps, "uncommitted_rows": store.dropped_rows,
        "episodes_intact": int(intact.sum()), "damaged_episodes": _ranges(~intact),
        "episode_lengths": lengths.tolist(), "episode_returns": returns, "episode_tasks": tasks.tolist(),
        "bytes_on_disk": store.bytes_on_disk,
        "arrays": [_array_summary(a, check) for a in store.arrays()],
    }
    if "sequence" in manifest:
        r["sequence"] = manifest["sequence"]
    names = manifest.get("task_names")
    if names or len(set(tasks.tolist()) | {0}) > 1:
        r["tasks"] = _task_summary(lengths, tasks, returns, names if isinstance(names, list) else [])
    if "caption" in check.values:
        r["captions"] = _caption_summary(check.values["caption"], store, check, manifest.get("caption_vocab"))
    try:
        memory = load_learner_memory(store.path)
    except StoreError as exc:
        damaged.append({"array": "learner memory", "chunk": None, "rows": None, "error": str(exc)})
        memory = None
    if memory is not None:
        r["memory_step"] = memory.step
        r["cache"] = None if memory.cache is None else _cache_summary(memory.cache)
        r["spectral"] = [_column_summary(m, block) for m, block in enumerate(memory.spectral)]
    if damaged:
        r["status"] = "damaged"
    return r


def _manifest(run_dir: Path) -> dict[str, Any]:
    """run.json of the store's run, or {} if there is none or it cannot be read (the store still can)."""
    from memory import StoreError, read_manifest

    try:
        return read_manifest(run_dir)
    except StoreError:
        return {}


def _returns(store: EpisodeStore, check: StoreCheck) -> list[Any]:
    """Each committed episode's summed reward (None where a reward chunk of it is damaged; 0 without rewards)."""
    if "reward" not in check.values:
        return [0.0] * store.n_episodes
    if not store.n_episodes:
        return []
    starts = np.concatenate(([0], store.episode_ends[:-1]))
    sums = np.add.reduceat(check.values["reward"].astype(np.float64), starts, axis=0)
    return [value.tolist() if ok else None for value, ok in zip(sums, check.intact(["reward"]))]


def _ranges(mask: np.ndarray) -> list[list[int]]:
    """The runs of True in mask as [start, stop) pairs."""
    edges = np.flatnonzero(np.diff(np.concatenate(([0], mask.astype(np.int8), [0]))))
    return [[int(a), int(b)] for a, b in zip(edges[::2], edges[1::2])]


def _array_summary(info: Any, check: StoreCheck) -> dict[str, Any]:
    """One array's layout, and what reading it found (chunks_read None: not read)."""
    read = check.arrays.get(info.path)
    return {"path": info.path, "shape": list(info.shape), "dtype": info.dtype, "chunks": list(info.chunks),
            "bytes_on_disk": info.bytes_on_disk, "compressors": info.compressors,
            "checksums": "crc32c" in info.compressors or "checksum=True" in info.compressors,
            "chunks_read": None if read is None else read.chunks,
            "damaged_chunks": 0 if read is None else len(read.damage)}


def _task_summary(lengths: np.ndarray, tasks: np.ndarray, returns: list[Any], names: list[Any]) -> list[dict]:
    """Episodes, steps and returns (mean, min, max of whole episodes) of every task named or seen."""
    out = []
    for t in sorted(set(range(len(names))) | set(tasks.tolist())):
        mine = tasks == t
        whole = [ret for ret, m in zip(returns, mine) if m and ret is not None and np.ndim(ret) == 0]
        out.append({"task": t, "name": names[t] if t < len(names) else None, "episodes": int(mine.sum()),
                    "steps": int(lengths[mine].sum()),
                    "return_mean": float(np.mean(whole)) if whole else None,
                    "return_min": float(min(whole)) if whole else None,
                    "return_max": float(max(whole)) if whole else None})
    return out


def _caption_summary(tokens: np.ndarray, store: EpisodeStore, check: StoreCheck, vocab: Any) -> dict[str, Any]:
    """The most frequent captions, and the captions of the first and last episode, over episodes whose
    captions read whole."""
    from memory import caption_decoder

    decode, note = caption_decoder(vocab)
    ends = store.episode_ends
    starts = np.concatenate(([0], ends))[:-1].astype(np.int64)
    whole = np.flatnonzero(check.intact(["caption"]))
    rows = np.concatenate([np.arange(starts[i], ends[i]) for i in whole] or [[]])
    counts: Counter[str] = Counter()
    if len(rows):
        unique, inverse = np.unique(tokens[rows.astype(np.int64)], axis=0, return_inverse=True)
        for text, n in zip((decode(u) for u in unique), np.bincount(inverse.ravel(), minlength=len(unique))):
            counts[text] += int(n)
    frequent = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:SHOWN_CAPTIONS]

    def episode(i: int) -> dict[str, Any]:
        segments: list[dict[str, Any]] = []
        for row in tokens[starts[i] : ends[i]]:
            text = decode(row)
            if segments and segments[-1]["caption"] == text:
                segments[-1]["steps"] += 1
            else:
                segments.append({"caption": text, "steps": 1})
        return {"episode": int(i), "captions": segments}

    out: dict[str, Any] = {"decoded": note is None, "distinct": len(counts),
                           "most_frequent": [{"caption": text, "steps": n} for text, n in frequent],
                           "first_episode": episode(whole[0]) if len(whole) else None,
                           "last_episode": episode(whole[-1]) if len(whole) else None}
    if note is not None:
        out["note"] = note
    return out


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


def _damage_line(r: dict[str, Any], where: str) -> str:
    """The one stderr line of a damaged store: which arrays, how many chunks each; where the report is."""
    per_array = Counter(d["array"] for d in r["damaged"])
    what = ", ".join(a if a == "learner memory" else f"{a} ({n} chunk{'s' * (n > 1)})" for a, n in per_array.items())
    return (f"thalamus: error: '{r['store']}' is damaged: {what} cannot be read; "
            f"the report {where} says what still reads")


def main(args: argparse.Namespace) -> int:
    """Print the report; 1 if the run never started or the store is damaged (one line on stderr), else 0."""
    start = never_started(args.run_dir)
    if start is not None:
        if args.json:
            print(json.dumps(start))
        sys.stderr.write(f"thalamus: error: {_never_started_line(start)}\n")
        return 1
    r = report(args.run_dir, verify=args.verify)
    if args.json:
        print(json.dumps(r))
    else:
        _print_report(r)
    if r["status"] == "damaged":
        sys.stdout.flush()
        sys.stderr.write(_damage_line(r, "on stdout" if args.json else "above") + "\n")
        return 1
    return 0


def _print_report(r: dict[str, Any]) -> None:
    from rich.markup import escape
    from rich.table import Table

    from launch.display import stdout_console

    console = stdout_console()
    lengths = np.asarray(r["episode_lengths"])
    returns = np.asarray([x for x in r["episode_returns"] if x is not None and np.ndim(x) == 0], dtype=float)
    console.print(f"[bold]{escape(r['store'])}[/]  format {r['format']} v{r['version']}  "
                  f"{r['bytes_on_disk'] / 2**20:.2f} MiB on disk")
    console.print(f"episodes {r['episodes']}   steps {r['steps']:,}   uncommitted rows {r['uncommitted_rows']}")
    if len(lengths):
        line = f"episode length min/mean/max {lengths.min()}/{lengths.mean():.1f}/{lengths.max()}"
        if len(returns):
            line += f"   return min/mean/max {returns.min():.1f}/{returns.mean():.1f}/{returns.max():.1f}"
        console.print(line)
    _print_health(console, r)
    if r["arrays"]:  # a store without episodes/ (only learner memory so far) has none
        arrays = Table("array", "shape", "dtype", "chunks", "on disk", "codecs", "chunks read", "damaged",
                       title="arrays", title_justify="left")
        for a in r["arrays"]:
            arrays.add_row(a["path"], str(tuple(a["shape"])), a["dtype"], str(tuple(a["chunks"])),
                           f"{a['bytes_on_disk'] / 2**10:,.1f} KiB", a["compressors"],
                           "-" if a["chunks_read"] is None else str(a["chunks_read"]), str(a["damaged_chunks"]))
        console.print(arrays)
    if len(lengths):
        shown = min(len(lengths), 20)
        episodes = Table("episode", "length", "task", "return", title=f"last {shown} episodes", title_justify="left")
        for i in range(len(lengths) - shown, len(lengths)):
            ret = r["episode_returns"][i]
            episodes.add_row(str(i), str(lengths[i]), str(r["episode_tasks"][i]),
                             "-" if ret is None else (f"{ret:.2f}" if np.ndim(ret) == 0 else str(ret)))
        console.print(episodes)
    if "tasks" in r:
        _print_tasks(console, r)
    if "captions" in r:
        _print_captions(console, r["captions"])
    if "memory_step" in r:
        _print_memory(console, r)


def _print_health(console: Any, r: dict[str, Any]) -> None:
    """Damage (each chunk that cannot be read), what still reads, and how much was read."""
    from rich.markup import escape

    if r["damaged"]:
        console.print(f"[bold red]damaged[/]: {len(r['damaged'])} part(s) cannot be read")
        for d in r["damaged"]:
            if d["chunk"] is None:
                console.print(f"  {d['array']}: {escape(d['error'])}")
                continue
            unit = "episodes" if d["array"].startswith("episodes/meta/") else "rows"
            console.print(f"  {d['array']} chunk {d['chunk'][0]} ({unit} {d['rows'][0]} to {d['rows'][1] - 1}): "
                          f"{escape(d['error'])}")
        whole = [a["path"] for a in r["arrays"] if a["chunks_read"] is not None and not a["damaged_chunks"]]
        console.print(f"still reads: {r['episodes_intact']} of {r['episodes']} episodes whole"
                      + "".join(f"; episodes {a} to {b - 1} touch damaged chunks" for a, b in r["damaged_episodes"])
                      + (f"; every chunk of {', '.join(whole)}" if whole else ""))
        if any(d["array"].startswith("episodes/meta/") for d in r["damaged"]) and r["uncommitted_rows"]:
            console.print(f"  {r['uncommitted_rows']} rows of data lie past the last episode end that reads: "
                          "kept on disk, but in no episode")
    if r["verified"]:
        plain = [a["path"] for a in r["arrays"] if not a["checksums"]]
        memory = " and the learner memory (against its CRC-32s)" if "memory_step" in r else ""
        console.print(f"verified: every chunk of {len(r['arrays'])} episode arrays{memory} read"
                      + (f"; {len(plain)} arrays were written without checksums (a flipped byte there can go "
                         "unnoticed)" if plain else ""))
    else:
        console.print("read: the episode index, rewards and captions; --verify reads every chunk of every array")


def _print_tasks(console: Any, r: dict[str, Any]) -> None:
    from rich.table import Table

    title = f"tasks of {r['sequence']}" if "sequence" in r else "tasks"
    table = Table("task", "name", "episodes", "steps", "return mean", "min", "max", title=title, title_justify="left")
    for t in r["tasks"]:
        table.add_row(str(t["task"]), t["name"] or "-", str(t["episodes"]), f"{t['steps']:,}",
                      *("-" if t[k] is None else f"{t[k]:.2f}" for k in ("return_mean", "return_min", "return_max")))
    console.print(table)


def _print_captions(console: Any, c: dict[str, Any]) -> None:
    from rich.markup import escape

    def text(caption: str) -> str:
        return escape(caption) if caption else "(no caption)"

    console.print(f"[bold]captions[/]  {c['distinct']} distinct" + (f"  ({escape(c['note'])})" if "note" in c else ""))
    if c["most_frequent"]:
        console.print("most frequent: " + ", ".join(f"{text(f['caption'])} ×{f['steps']}" for f in c["most_frequent"]))
    for which in ("first_episode", "last_episode"):
        ep = c[which]
        if ep is None:
            continue
        segments = [f"{text(s['caption'])} ×{s['steps']}" for s in ep["captions"][:SHOWN_SEGMENTS]]
        more = len(ep["captions"]) - SHOWN_SEGMENTS
        console.print(f"{which.replace('_', ' ')} ({ep['episode']}): " + " → ".join(segments)
                      + (f" … ({more} more changes)" if more > 0 else ""))


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
