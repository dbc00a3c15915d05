"""Disk space where a run writes: how much is free, and whether a run will fit.

A run's store and manifest live on one disk. `check_free_space` lets the runtime warn (or stop cleanly)
before a run starts that the disk cannot hold; manifest.py keeps a reserve file so that run.json can
still record how a run ended once the disk is full.
"""

import os
from pathlib import Path

from memory.layout import ArraySpec


def free_bytes(path: str | Path) -> int:
    """Bytes an unprivileged writer may still use on the disk of path (or of its nearest existing parent)."""
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    stat = os.statvfs(path)
    return stat.f_bavail * stat.f_frsize


def store_bytes_needed(specs: dict[str, ArraySpec], steps: int) -> int:
    """An upper bound on the bytes `steps` rows of these arrays take on disk (uncompressed: zstd only shrinks)."""
    return steps * sum(spec.row_bytes for spec in specs.values())


def check_free_space(run_dir: str | Path, need_bytes: int) -> str | None:
    """None if the disk of run_dir has need_bytes free, else a one-line warning saying what is short."""
    free = free_bytes(run_dir)
    if free >= need_bytes:
        return None
    return (
        f"only {_size(free)} free on the disk of '{run_dir}', and this run may write up to {_size(need_bytes)}: "
        "free some space, choose a --run-dir on another disk, or run fewer steps"
    )


def _size(n: int) -> str:
    """Bytes as GiB with two decimals (MiB below 1 GiB)."""
    if n >= 2**30:
        return f"{n / 2**30:.2f} GiB"
    return f"{n / 2**20:.1f} MiB"
