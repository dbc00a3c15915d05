"""The single writer of a run store: whole episodes, buffered in RAM, committed in batches.

Crash safety, from zarr 3.1's LocalStore (zarr/storage/_local.py) and array resize (core/array.py):
  - every file (chunk or zarr.json) is written to '<name>.<uuid>.partial' beside it, then
    os.replace()d over it: a killed process leaves each file old or new, never torn, plus perhaps a
    stray *.partial file that zarr never reads. There is no fsync, so this holds against a killed
    process, not against power loss.
  - resize() writes the new zarr.json before any chunk. Shrinking first deletes the chunks wholly
    outside the new shape and leaves stale values in the last, partial chunk, which a later grow
    exposes again.
A flush therefore writes, in order: every data array (resize, then its new rows in one slice),
episode_task, and last episode_ends (resize, then values): the commit. Killed anywhere, a store is in
a state that integrity.read_commit handles:
  - data arrays longer than episode_ends[-1] (their new rows zero or only partly written): the rows
    are ignored and reported as dropped rows;
  - episode_ends resized but its chunk not written: the new entries read 0, are not increasing, and
    are cut off;
  - new episode_ends entries spanning two chunks (zarr writes them concurrently) with only one
    written: entries up to the first unwritten one are kept; they are valid, since all their rows
    and task ids were written before them.
So every episode whose flush returned is kept; an episode of an interrupted flush is either kept
whole or not at all. Resume (open_store(path, mode="a")) repairs before appending: it cuts the meta
arrays to the committed prefix and rewrites their last chunk (so a later interrupted resize reads 0,
never a stale old end), cuts the data arrays to episode_ends[-1], and deletes stray *.partial files.
A store is created in a temporary directory and renamed into place, so it is never half-created; into
a store that holds only learner memory so far, episodes/ is built the same way and renamed in.
Not covered: power loss (no fsync), a damaged data chunk inside the committed prefix (reads raise
StoreError; every chunk carries a CRC-32C, see layout.py, so damage is found, not misread), and two
writers, which an flock on the store directory (lock.py) prevents. Every way of opening a writer
(create_store, adding episodes/ to a learner-only store, resume) ends in _locked_writer.
"""

import contextlib
import operator
import os
import shutil
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

import numpy as np
import zarr

from memory.errors import StoreError, reason
from memory.integrity import Commit, OpenedStore, open_checked, open_root, read_commit
from memory.layout import (
    COMPRESSORS,
    DATA,
    ENDS,
    EPISODES,
    META_CHUNK,
    PARTIAL,
    STORE_DIR,
    STORE_FORMAT,
    STORE_VERSION,
    TASKS,
    ArraySpec,
    check_key,
    chunk_rows,
    dir_bytes,
)
from memory.lock import WriterLock


class EpisodeWriter:
    """Appends complete episodes to a store; the only writer of it while open (see module docstring).

    Made by create_store or open_store(path, mode="a"), not directly. The time-based flush is checked
    when an episode is added; there is no background thread.
    """

    def __init__(
        self, store: OpenedStore, lock: WriterLock, commit: Commit, *, flush_rows: int, flush_seconds: float
    ) -> None:
        self.path = store.path
        self.specs = {key: ArraySpec(tuple(arr.shape[1:]), arr.dtype.name) for key, arr in store.data.items()}
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._store = store
        self._lock: WriterLock | None = lock
        self._n_episodes = commit.n_episodes
        self._n_steps = commit.n_steps
        self._pending: dict[str, list[np.ndarray]] = {key: [] for key in self.specs}
        self._lengths: list[int] = []
        self._tasks: list[int] = []
        self._last_flush = time.monotonic()

    @property
    def n_episodes(self) -> int:
        """Committed episodes (buffered ones not included)."""
        return self._n_episodes

    @property
    def n_steps(self) -> int:
        """Committed rows (buffered ones not included)."""
        return self._n_steps

    @property
    def bytes_on_disk(self) -> int:
        """Size of the store's files."""
        return dir_bytes(self.path)

    def add_episode(self, data: dict[str, np.ndarray], task: int = 0) -> None:
        """Buffer one complete episode: every key, shape (L, *spec.shape), the same L >= 1 for all keys."""
        self._check_open()
        task = operator.index(task)
        if not -(2**31) <= task < 2**31:
            raise StoreError(f"task id {task} does not fit episode_task (int32)")
        if set(data) != set(self.specs):
            missing = sorted(set(self.specs) - set(data))
            extra = sorted(set(data) - set(self.specs))
            what = f"missing key {missing[0]!r}" if missing else f"unknown key {extra[0]!r}"
            raise StoreError(f"episode has {what}; the store's keys are {sorted(self.specs)}")
        rows: dict[str, np.ndarray] = {}
        length = None
        for key, spec in self.specs.items():
            value = np.asarray(data[key])
            if value.ndim != 1 + len(spec.shape) or value.shape[1:] != spec.shape or value.shape[0] < 1:
                expected = "(L" + "".join(f", {n}" for n in spec.shape) + ")"
                raise StoreError(f"episode key {key!r} has shape {value.shape}, expected {expected} with L >= 1")
            if length is not None and value.shape[0] != length:
                raise StoreError(f"episode key {key!r} has {value.shape[0]} rows, expected {length} like the other keys")
            if not np.can_cast(value.dtype, spec.dtype, casting="same_kind"):
                raise StoreError(f"episode key {key!r} has dtype {value.dtype}, which does not fit {spec.dtype}")
            length = value.shape[0]
            rows[key] = np.array(value, dtype=spec.dtype)  # a copy: the caller may reuse its buffers
        for key, value in rows.items():
            self._pending[key].append(value)
        self._lengths.append(int(length))
        self._tasks.append(task)
        if sum(self._lengths) >= self.flush_rows or time.monotonic() - self._last_flush > self.flush_seconds:
            self.flush()

    def flush(self) -> int:
        """Write buffered episodes: data rows, then task ids, then episode_ends (the commit). Returns how many."""
        self._check_open()
        self._last_flush = time.monotonic()
        count = len(self._lengths)
        if count == 0:
            return 0
        start, rows = self._n_steps, sum(self._lengths)
        # Resize to start + rows (not current length + rows): rows left by a failed flush are overwritten.
        for key, arr in self._store.data.items():
            arr.resize((start + rows, *arr.shape[1:]))
            arr[start : start + rows] = np.concatenate(self._pending[key])
        ends = start + np.cumsum(self._lengths, dtype=np.int64)
        _write_from(self._store.tasks, self._n_episodes, np.asarray(self._tasks, dtype=np.int32))
        _write_from(self._store.ends, self._n_episodes, ends)
        self._n_episodes += count
        self._n_steps = int(ends[-1])
        self._pending = {key: [] for key in self.specs}
        self._lengths, self._tasks = [], []
        return count

    def close(self) -> None:
        """Flush and release the store; closing twice does nothing."""
        if self._lock is None:
            return
        try:
            self.flush()
        finally:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "EpisodeWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            self.close()
            return
        # Buffered episodes are complete, so still commit them, but never hide the original error.
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return f"EpisodeWriter('{self.path}', episodes={self._n_episodes}, steps={self._n_steps})"

    def _check_open(self) -> None:
        if self._lock is None:
            raise StoreError(f"the writer of '{self.path}' is closed: open it again with open_store(..., mode='a')")


def _check_flush_args(flush_rows: int, flush_seconds: float) -> None:
    if flush_rows < 1 or flush_seconds < 0:
        raise StoreError(f"flush_rows must be >= 1 and flush_seconds >= 0, got {flush_rows} and {flush_seconds}")


def _write_from(arr: zarr.Array, at: int, values: np.ndarray) -> None:
    """Set arr[at:at+len(values)], growing or cutting the 1-D array to end there."""
    arr.resize((at + len(values),))
    arr[at:] = values


def create_store(
    run_dir: str | Path, specs: dict[str, ArraySpec], *, flush_rows: int = 4096, flush_seconds: float = 1.0
) -> EpisodeWriter:
    """Create RUN_DIR/store.zarr with one data array per spec and return its writer.

    If store.zarr exists but holds only learner memory (no episodes/ yet), episodes/ is added to it.
    """
    run_dir = Path(run_dir)
    path = run_dir / STORE_DIR
    _check_flush_args(flush_rows, flush_seconds)
    if not specs:
        raise StoreError("a store needs at least one data array spec")
    for key, spec in specs.items():
        check_key(key)
        if not isinstance(spec, ArraySpec):
            raise StoreError(f"spec of {key!r} is {type(spec).__name__}, expected ArraySpec")
    if path.exists():
        return _add_episodes(run_dir, specs, flush_rows=flush_rows, flush_seconds=flush_seconds)
    run_dir.mkdir(parents=True, exist_ok=True)
    building = run_dir / f".{STORE_DIR}.{uuid.uuid4().hex}.creating"
    try:
        _build(building, specs)
        lock = WriterLock(building)  # the lock follows the directory through the rename
        try:
            os.rename(building, path)
        except OSError:
            lock.release()
            if not path.exists():
                raise
            # The learner's memory created store.zarr meanwhile: add episodes/ to it instead.
            shutil.rmtree(building, ignore_errors=True)
            return _add_episodes(run_dir, specs, flush_rows=flush_rows, flush_seconds=flush_seconds)
    except BaseException:
        shutil.rmtree(building, ignore_errors=True)
        raise
    return _locked_writer(path, lock, repair=False, flush_rows=flush_rows, flush_seconds=flush_seconds)


def _already_exists(run_dir: Path) -> StoreError:
    return StoreError(
        f"'{run_dir / STORE_DIR}' already exists: append to it with open_store('{run_dir}', mode='a'), "
        "or choose a new run directory"
    )


def _add_episodes(
    run_dir: Path, specs: dict[str, ArraySpec], *, flush_rows: int, flush_seconds: float
) -> EpisodeWriter:
    """Add an empty episodes/ to an existing store that has none: built aside, then renamed in."""
    path = run_dir / STORE_DIR
    if (path / EPISODES).exists():
        raise _already_exists(run_dir)
    lock = WriterLock(path)
    with _released_on_error(lock):
        open_root(path, writable=True)  # a corrupt or newer store is refused, not extended
        if (path / EPISODES).exists():  # added by another writer before the lock was taken
            raise _already_exists(run_dir)
        building = run_dir / f".{STORE_DIR}.{uuid.uuid4().hex}.creating"
        try:
            _build(building, specs)
            os.rename(building / EPISODES, path / EPISODES)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return _locked_writer(path, lock, repair=False, flush_rows=flush_rows, flush_seconds=flush_seconds)


def ensure_store(run_dir: Path) -> Path:
    """RUN_DIR/store.zarr, created with the root attrs only (no episodes/) if missing; never half-created."""
    path = run_dir / STORE_DIR
    if path.exists():
        return path
    run_dir.mkdir(parents=True, exist_ok=True)
    building = run_dir / f".{STORE_DIR}.{uuid.uuid4().hex}.creating"
    try:
        root = zarr.open_group(building, mode="w-", zarr_format=3)
        root.attrs.update({"format": STORE_FORMAT, "version": STORE_VERSION})
        try:
            os.rename(building, path)
        except OSError:
            if not path.exists():
                raise
            # Another process created the store meanwhile (create_store or another saver): use that one.
    finally:
        shutil.rmtree(building, ignore_errors=True)
    return path


def _build(path: Path, specs: dict[str, ArraySpec]) -> None:
    root = zarr.open_group(path, mode="w-", zarr_format=3)
    for key, spec in specs.items():
        root.create_array(
            f"{DATA}/{key}", shape=(0, *spec.shape), chunks=(chunk_rows(spec), *spec.shape), dtype=spec.dtype,
            compressors=COMPRESSORS,
        )
    for name, dtype in ((ENDS, "int64"), (TASKS, "int32")):
        root.create_array(
            name, shape=(0,), chunks=(META_CHUNK,), dtype=dtype, fill_value=0, compressors=COMPRESSORS
        )
    root.attrs.update({"format": STORE_FORMAT, "version": STORE_VERSION})


def resume_writer(path: Path, *, flush_rows: int = 4096, flush_seconds: float = 1.0) -> EpisodeWriter:
    """Lock the store at path, repair it to its committed prefix, and return a writer appending after it."""
    _check_flush_args(flush_rows, flush_seconds)
    lock = WriterLock(path)  # before reading the commit, so no other writer can move it
    return _locked_writer(path, lock, repair=True, flush_rows=flush_rows, flush_seconds=flush_seconds)


@contextlib.contextmanager
def _released_on_error(lock: WriterLock) -> Iterator[None]:
    """Release lock if the with-block fails: a writer that never opened must not keep the store locked."""
    try:
        yield
    except BaseException:
        lock.release()
        raise


def _locked_writer(
    path: Path, lock: WriterLock, *, repair: bool, flush_rows: int, flush_seconds: float
) -> EpisodeWriter:
    """The writer of the store at path, whose lock is taken: open and check it and find its commit; with
    repair, first cut it to that commit (a killed writer may have left rows past it)."""
    with _released_on_error(lock):
        store = open_checked(path, writable=True)
        commit = read_commit(store)
        if repair:
            try:
                _repair(store, commit)
            except Exception as exc:
                raise StoreError(f"'{path}' could not be repaired for appending: {reason(exc)}") from exc
        return EpisodeWriter(store, lock, commit, flush_rows=flush_rows, flush_seconds=flush_seconds)


def _repair(store: OpenedStore, commit: Commit) -> None:
    """Cut the store to its committed prefix; each step keeps that prefix readable if killed."""
    n = commit.n_episodes
    for arr, values in ((store.ends, commit.ends), (store.tasks, commit.tasks)):
        arr.resize((n,))
        if n:
            # Rewriting the whole last chunk up to the end clears stale values beyond it.
            first = (n - 1) // arr.chunks[0] * arr.chunks[0]
            arr[first:n] = values[first:n]
    for arr in store.data.values():
        if arr.shape[0] != commit.n_steps:
            arr.resize((commit.n_steps, *arr.shape[1:]))
    for folder, _, files in os.walk(store.path):
        for name in files:
            if PARTIAL.search(name):
                Path(folder, name).unlink(missing_ok=True)
