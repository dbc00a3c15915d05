"""Reading a run store: only committed episodes, checked at open, with one-line errors."""

import operator
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, overload

import numpy as np
import zarr

from memory.errors import StoreError, reason
from memory.integrity import Commit, OpenedStore, locate_store, open_checked, read_commit
from memory.layout import DATA, ENDS, TASKS, dir_bytes
from memory.verify import ArrayCheck, Damage, intact_episodes, read_chunks
from memory.writer import EpisodeWriter, resume_writer


@dataclass(frozen=True)
class ArrayInfo:
    """What one array of the store looks like on disk, for inspection."""

    path: str
    shape: tuple[int, ...]
    dtype: str
    chunks: tuple[int, ...]
    bytes_on_disk: int
    compressors: str


@dataclass(frozen=True)
class StoreCheck:
    """What reading the arrays of a store chunk by chunk found (EpisodeStore.check).

    arrays: each array read, by path; values: the committed rows of each kept data array (rows of
    damaged chunks are 0); ends: the committed episode ends. Damage to episode_ends or episode_task
    ends the committed prefix instead (integrity.py): the episodes it hides are not counted at all.
    """

    arrays: dict[str, ArrayCheck]
    values: dict[str, np.ndarray]
    ends: np.ndarray

    @property
    def damage(self) -> list[Damage]:
        """Every chunk that could not be read, array by array."""
        return [d for check in self.arrays.values() for d in check.damage]

    def intact(self, keys: Iterable[str] | None = None) -> np.ndarray:
        """Per committed episode, whether its rows read in the data arrays keys (all those read if None)."""
        paths = [p for p in self.arrays if p.startswith(f"{DATA}/")] if keys is None else [f"{DATA}/{k}" for k in keys]
        return intact_episodes(self.ends, [d for p in paths for d in self.arrays[p].damage])


class EpisodeStore:
    """A read-only view of the episodes a store had committed when it was opened."""

    def __init__(self, store: OpenedStore, commit: Commit) -> None:
        self.path = store.path
        self.version = store.version
        self._store = store
        self._commit = commit

    @property
    def n_episodes(self) -> int:
        return self._commit.n_episodes

    @property
    def n_steps(self) -> int:
        return self._commit.n_steps

    @property
    def dropped_rows(self) -> int:
        """Rows beyond the commit point, left by an interrupted writer; never read."""
        return self._commit.dropped_rows

    @property
    def episode_ends(self) -> np.ndarray:
        """End (exclusive) row of each committed episode."""
        return self._commit.ends.copy()

    @property
    def episode_lengths(self) -> np.ndarray:
        return np.diff(self._commit.ends, prepend=0)

    @property
    def episode_tasks(self) -> np.ndarray:
        return self._commit.tasks.copy()

    @property
    def keys(self) -> list[str]:
        """Names of the data arrays, sorted."""
        return list(self._store.data)

    @property
    def bytes_on_disk(self) -> int:
        """Size of all the store's files."""
        return dir_bytes(self.path)

    def get_episode(self, i: int) -> dict[str, np.ndarray]:
        """Every data array's rows of committed episode i (negative i counts from the end)."""
        i = operator.index(i)
        n = self.n_episodes
        if not -n <= i < n:
            raise IndexError(f"episode {i} is out of range: '{self.path}' holds {n} committed episodes")
        i %= n
        start = int(self._commit.ends[i - 1]) if i else 0
        return {key: self._rows(key, start, int(self._commit.ends[i])) for key in self._store.data}

    def column(self, key: str) -> np.ndarray:
        """Every committed row of data array ``key``, the episodes concatenated in order."""
        return self._rows(key, 0, self.n_steps)

    def episode_returns(self, key: str = "reward") -> np.ndarray:
        """Sum of `key` over each committed episode, in float64."""
        if not self.n_episodes:
            return np.zeros((0, *self._array(key).shape[1:]))
        rows = self._rows(key, 0, self.n_steps).astype(np.float64)
        starts = np.concatenate(([0], self._commit.ends[:-1]))
        return np.add.reduceat(rows, starts, axis=0)

    @property
    def episode_complete(self) -> np.ndarray:
        """bool [E]: whether each committed episode ended by itself, not cut short when its run
        stopped (the ``stopped`` column on its last row; stores without one: all complete)."""
        if "stopped" not in self._store.data or not self.n_episodes:
            return np.ones(self.n_episodes, bool)
        return ~self._rows("stopped", 0, self.n_steps)[self._commit.ends - 1].astype(bool)

    def arrays(self) -> list[ArrayInfo]:
        """Layout of the data arrays, then of episode_ends and episode_task (none in a store without episodes)."""
        named = [(f"{DATA}/{key}", arr) for key, arr in self._store.data.items()]
        meta = ((ENDS, self._store.ends), (TASKS, self._store.tasks))
        named += [(name, arr) for name, arr in meta if arr is not None]
        return [
            ArrayInfo(
                path=name,
                shape=tuple(arr.shape),
                dtype=str(arr.dtype),
                chunks=tuple(arr.chunks),
                bytes_on_disk=dir_bytes(self.path / name),
                compressors=_codecs_text(arr),
            )
            for name, arr in named
        ]

    def check(self, keys: Iterable[str] | None = None, keep: Iterable[str] = ()) -> StoreCheck:
        """Read every chunk of episode_ends, episode_task and the data arrays keys (all of them if None).

        Returns what could not be read and which committed episodes are whole; the committed rows of the
        data arrays in keep (which must be among those read) come back too, so they are read only once.
        """
        keys = self.keys if keys is None else list(keys)
        keep = set(keep)
        for key in [*keys, *keep]:
            self._array(key)  # KeyError naming the store's keys
        if not keep <= set(keys):
            raise ValueError(f"keep {sorted(keep - set(keys))} names arrays that are not read")
        arrays: dict[str, ArrayCheck] = {}
        values: dict[str, np.ndarray] = {}
        for name, arr in ((ENDS, self._store.ends), (TASKS, self._store.tasks)):
            if arr is not None:
                arrays[name], _ = read_chunks(arr, name, keep=False)
        for key in keys:
            path = f"{DATA}/{key}"
            arrays[path], rows = read_chunks(self._store.data[key], path, keep=key in keep)
            if rows is not None:
                values[key] = rows[: self.n_steps]
        return StoreCheck(arrays=arrays, values=values, ends=self._commit.ends.copy())

    def __repr__(self) -> str:
        return f"EpisodeStore('{self.path}', episodes={self.n_episodes}, steps={self.n_steps})"

    def _array(self, key: str) -> zarr.Array:
        try:
            return self._store.data[key]
        except KeyError:
            raise KeyError(f"no data array {key!r} in '{self.path}'; its keys are {self.keys}") from None

    def _rows(self, key: str, start: int, stop: int) -> np.ndarray:
        arr = self._array(key)
        try:
            return np.asarray(arr[start:stop])
        except Exception as exc:  # a damaged chunk inside the committed prefix
            raise StoreError(
                f"'{self.path}' is damaged: rows {start}..{stop} of {DATA}/{key} cannot be read ({reason(exc)})"
            ) from exc


def _codecs_text(arr: zarr.Array) -> str:
    parts = []
    for codec in arr.compressors:
        spec = codec.to_dict()
        config = ", ".join(f"{k}={v}" for k, v in spec.get("configuration", {}).items())
        parts.append(f"{spec['name']}({config})")
    return " + ".join(parts) or "none"


@overload
def open_store(run_dir: str | Path, mode: Literal["r"] = "r") -> EpisodeStore: ...
@overload
def open_store(run_dir: str | Path, mode: Literal["a"]) -> EpisodeWriter: ...
def open_store(run_dir: str | Path, mode: str = "r") -> EpisodeStore | EpisodeWriter:
    """Open the store of a run dir (or a store.zarr path): "r" to read, "a" to repair and append."""
    if mode not in ("r", "a"):
        raise ValueError(f"mode must be 'r' (read) or 'a' (append), got {mode!r}")
    path = locate_store(run_dir)
    if mode == "a":
        return resume_writer(path)
    store = open_checked(path, writable=False)
    return EpisodeStore(store, read_commit(store))
