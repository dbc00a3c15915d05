"""Reading a store's arrays chunk by chunk to find the chunks that cannot be read: what a damaged store
still holds, for `thalamus memory inspect` (and its --verify, which reads every chunk of every array).

A chunk cannot be read when its file is torn, truncated or garbage, or fails its CRC-32C (layout.py).
A killed writer never leaves such a chunk (writer.py: each file is replaced whole), so any is damage.
A missing chunk file is not damage: zarr skips writing a chunk that equals the fill value, and reads it
back as the fill value.
"""

from dataclasses import dataclass

import numpy as np
import zarr
from zarr.codecs import Crc32cCodec, ZstdCodec

from memory.errors import reason


@dataclass(frozen=True)
class Damage:
    """A chunk that cannot be read: the array's path in the store, the chunk's grid index, the rows it
    holds along the first axis (start, stop), and why."""

    array: str
    chunk: tuple[int, ...]
    rows: tuple[int, int]
    error: str


@dataclass(frozen=True)
class ArrayCheck:
    """One array read chunk by chunk: its path, how many chunks were read, whether its chunks carry a
    checksum (else a flipped byte may decode to wrong values unnoticed), and the chunks that failed."""

    path: str
    chunks: int
    checksums: bool
    damage: tuple[Damage, ...]


def has_checksums(arr: zarr.Array) -> bool:
    """Whether every chunk of arr ends in a checksum: a crc32c codec, or zstd with its own checksum."""
    return any(isinstance(c, Crc32cCodec) or (isinstance(c, ZstdCodec) and c.checksum) for c in arr.compressors)


def read_chunks(arr: zarr.Array, path: str, *, keep: bool) -> tuple[ArrayCheck, np.ndarray | None]:
    """Read every chunk of arr (chunked along its first axis only, as every episode array is).

    With keep, also returns all of arr's rows, those of damaged chunks left at 0; else None, and no
    more than one chunk is in memory at a time.
    """
    values = np.zeros(arr.shape, dtype=arr.dtype) if keep else None
    step = arr.chunks[0]
    damage = []
    for index in np.ndindex(*arr.cdata_shape):
        start = index[0] * step
        stop = min(start + step, arr.shape[0])
        try:
            block = arr.get_block_selection(index)
        except Exception as exc:  # torn, truncated, garbage or failing its checksum: zarr raises many types
            damage.append(Damage(array=path, chunk=tuple(int(i) for i in index), rows=(start, stop), error=reason(exc)))
            continue
        if values is not None:
            values[start:stop] = block
    check = ArrayCheck(path=path, chunks=int(np.prod(arr.cdata_shape)), checksums=has_checksums(arr),
                       damage=tuple(damage))
    return check, values


def intact_episodes(ends: np.ndarray, damage: list[Damage]) -> np.ndarray:
    """For each episode (its rows end at ends[i]), whether none of its rows lies in a damaged chunk."""
    n_steps = int(ends[-1]) if len(ends) else 0
    bad = np.zeros(n_steps + 1, dtype=np.int64)  # +1 at the start of each damaged range, -1 at its stop
    for d in damage:
        start, stop = min(d.rows[0], n_steps), min(d.rows[1], n_steps)
        if start < stop:
            bad[start] += 1
            bad[stop] -= 1
    damaged_before = np.concatenate(([0], np.cumsum(np.cumsum(bad)[:-1] > 0)))  # damaged rows below each row
    starts = np.concatenate(([0], ends))[:-1].astype(np.int64)
    return damaged_before[ends.astype(np.int64)] == damaged_before[starts]
