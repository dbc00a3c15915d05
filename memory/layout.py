"""Names, format version, array specs and chunking of a thalamus run store.

    RUN_DIR/
      run.json                      manifest (JSON object, see manifest.py)
      store.zarr/                   root group, attrs {"format": "thalamus-store", "version": 1}
        episodes/data/<key>         (T, *row_shape) <dtype>  one row per step, episodes joined along
                                    time; chunked along time only (~1 MiB per chunk), zstd + crc32c
        episodes/meta/episode_ends  (E,) int64  end (exclusive) of each committed episode: the commit
        episodes/meta/episode_task  (E,) int32  task id of each episode
        learner/, cache/, spectral/ the learner's memories (see learner_memory.py)

Episode i holds rows episode_ends[i-1] (0 for i = 0) up to episode_ends[i] of every data array.
A store may hold learner memory and no episodes/ yet (the learner saved before the first episode);
it reads as a store of 0 episodes, and create_store adds episodes/ to it.

Every chunk is zstd-compressed, then followed by the CRC-32C of the compressed bytes (zarr 3's crc32c
codec, in the array's zarr.json), so a flipped or missing byte anywhere in a chunk fails its read
instead of decoding to wrong values. Stores written before had zstd alone; their zarr.json says so,
and they read (and are appended to) as before, without that check.
"""

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from zarr.codecs import Crc32cCodec, ZstdCodec

from memory.errors import StoreError

STORE_FORMAT = "thalamus-store"
STORE_VERSION = 1
STORE_DIR = "store.zarr"
EPISODES = "episodes"
DATA = "episodes/data"
ENDS = "episodes/meta/episode_ends"
TASKS = "episodes/meta/episode_task"
META_CHUNK = 1024  # episodes per chunk of the meta arrays: each commit rewrites only a small last chunk

COMPRESSORS = (ZstdCodec(level=0), Crc32cCodec())  # of every array the store writes: see above
_KEY = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
PARTIAL = re.compile(r"\.[0-9a-f]{32}\.partial$")  # temporary files of zarr's LocalStore writes


@dataclass(frozen=True)
class ArraySpec:
    """Shape of one row (without the time axis) and numpy dtype of a data array."""

    shape: tuple[int, ...]
    dtype: str

    def __post_init__(self) -> None:
        shape = tuple(int(n) for n in self.shape)
        if any(n < 0 for n in shape):
            raise StoreError(f"array spec shape {shape} has a negative size")
        dtype = np.dtype(self.dtype)
        if dtype.kind not in "biufc":
            raise StoreError(f"array spec dtype {self.dtype!r} is not numeric or bool")
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "dtype", dtype.name)

    @property
    def row_bytes(self) -> int:
        """Bytes of one uncompressed row."""
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def chunk_rows(spec: ArraySpec) -> int:
    """Rows per chunk: about 1 MiB uncompressed, between 64 and 65536 rows."""
    return max(64, min(65536, 2**20 // max(1, spec.row_bytes)))


def check_key(key: str, what: str = "data key") -> None:
    """Refuse a key that would not be a plain directory name inside the store."""
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise StoreError(f"{what} {key!r} is not a plain name (letters, digits, '_', '.', '-')")


def dir_bytes(path: Path) -> int:
    """Total size of the files under path, in bytes."""
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(folder, name)).st_size
            except FileNotFoundError:  # replaced or deleted by a writer while walking
                continue
    return total


def has_episodes(run_dir: Path) -> bool:
    """Whether the run's store has its episode arrays (a run killed at start-up may have none)."""
    return (run_dir / STORE_DIR / EPISODES).is_dir()
