"""Opening a store with checks, and finding its committed prefix: what a reader may trust.

A store is trusted only up to the longest prefix of episode_ends that
  - decodes (a chunk that cannot be decoded ends the prefix; it does not fail the open),
  - is positive and strictly increasing (an episode has at least one row; a resized episode_ends
    whose chunk was never written reads the fill value 0 and stops here),
  - ends at or below the length of every data array (rows are written before their end is), and
  - has a task id (episode_task is written before episode_ends).
Rows past episode_ends[-1] belong to no committed episode; they are counted as dropped rows.
See writer.py for why a killed writer can only leave states that this rule handles.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import zarr

from memory.errors import StoreError, reason
from memory.layout import DATA, ENDS, EPISODES, STORE_DIR, STORE_FORMAT, STORE_VERSION, TASKS


@dataclass(frozen=True)
class OpenedStore:
    """The checked zarr handles of one store (ends and tasks are None in a store without episodes/)."""

    path: Path
    version: int
    data: dict[str, zarr.Array]
    ends: zarr.Array | None
    tasks: zarr.Array | None


@dataclass(frozen=True)
class Commit:
    """The trusted part of a store: ends and tasks of committed episodes, and each data array's length."""

    ends: np.ndarray
    tasks: np.ndarray
    data_rows: dict[str, int]

    @property
    def n_episodes(self) -> int:
        return len(self.ends)

    @property
    def n_steps(self) -> int:
        return int(self.ends[-1]) if len(self.ends) else 0

    @property
    def dropped_rows(self) -> int:
        """Rows beyond the commit point in the longest data array (left by an interrupted writer)."""
        return max(self.data_rows.values(), default=0) - self.n_steps


def locate_store(path: str | Path) -> Path:
    """The store.zarr path of a run dir, or path itself if it is a store; StoreError if there is none."""
    path = Path(path)
    if not path.exists():
        raise StoreError(
            f"no run at '{path}': the directory does not exist "
            f"(run `thalamus run --run-dir {path}` to create one)"
        )
    if path.suffix == ".zarr" or (path / "zarr.json").is_file():
        return path
    store = path / STORE_DIR
    if not store.exists():
        raise StoreError(f"'{path}' is not a thalamus run: {STORE_DIR} is missing")
    return store


def _corrupt(path: Path, why: str) -> StoreError:
    return StoreError(f"'{path}' is corrupt or not a thalamus store: {why}")


def open_root(path: Path, *, writable: bool) -> tuple[zarr.Group, int]:
    """Open the root group of the store at path and check its format and version; returns (root, version)."""
    if not path.is_dir():
        raise _corrupt(path, "it is not a directory")
    if not (path / "zarr.json").is_file():
        raise _corrupt(path, "zarr.json is missing")
    mode = "r+" if writable else "r"
    try:
        root = zarr.open_group(path, mode=mode, zarr_format=3)
        attrs = dict(root.attrs)
    except Exception as exc:  # zarr and json raise many types; all mean the same thing here
        raise _corrupt(path, f"cannot read zarr.json ({reason(exc)})") from exc
    if attrs.get("format") != STORE_FORMAT:
        raise _corrupt(path, f"root attrs have format={attrs.get('format')!r}, expected {STORE_FORMAT!r}")
    version = attrs.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _corrupt(path, f"root attrs have version={version!r}, expected a positive integer")
    if version > STORE_VERSION:
        raise StoreError(
            f"'{path}' was written by a newer thalamus (store version {version}, "
            f"this one reads up to {STORE_VERSION}): upgrade thalamus to read it"
        )
    return root, version


def open_checked(path: Path, *, writable: bool) -> OpenedStore:
    """Open the store at path and check format, version and arrays; every failure is one StoreError.

    A store without episodes/ (only learner memory so far) opens read-only as a store of 0 episodes.
    """
    root, version = open_root(path, writable=writable)
    if not (path / EPISODES).exists():
        if writable:
            raise StoreError(
                f"'{path}' holds no episodes yet (only learner memory): "
                f"start them with create_store('{path.parent}', specs)"
            )
        return OpenedStore(path=path, version=version, data={}, ends=None, tasks=None)
    ends = _open_array(root, path, ENDS)
    tasks = _open_array(root, path, TASKS)
    for name, arr in ((ENDS, ends), (TASKS, tasks)):
        if arr.ndim != 1 or arr.dtype.kind not in "iu":
            raise _corrupt(path, f"{name} is {arr.dtype} with shape {arr.shape}, expected 1-D integers")
    # Listed from the directory, not with zarr: stray files would make zarr warn, and this is cheaper.
    data_dir = path / DATA
    keys = sorted(p.name for p in data_dir.iterdir() if (p / "zarr.json").is_file()) if data_dir.is_dir() else []
    if not keys:
        raise _corrupt(path, f"{DATA} holds no arrays")
    data = {key: _open_array(root, path, f"{DATA}/{key}") for key in keys}
    for key, arr in data.items():
        if arr.ndim < 1:
            raise _corrupt(path, f"{DATA}/{key} is a scalar, expected a time axis")
    return OpenedStore(path=path, version=version, data=data, ends=ends, tasks=tasks)


def _open_array(root: zarr.Group, path: Path, name: str) -> zarr.Array:
    try:
        arr = root[name]
    except KeyError:
        raise _corrupt(path, f"{name} is missing") from None
    except Exception as exc:
        raise _corrupt(path, f"cannot open {name} ({reason(exc)})") from exc
    if not isinstance(arr, zarr.Array):
        raise _corrupt(path, f"{name} is a group, expected an array")
    return arr


def decodable_prefix(arr: zarr.Array) -> np.ndarray:
    """All of a 1-D array, or the part before its first chunk that fails to decode."""
    try:
        return np.asarray(arr[:])
    except Exception:  # a torn or garbage chunk: fall back chunk by chunk
        pass
    step = arr.chunks[0]
    parts = []
    for start in range(0, arr.shape[0], step):
        try:
            parts.append(np.asarray(arr[start : start + step]))
        except Exception:
            break
    return np.concatenate(parts) if parts else np.zeros(0, dtype=arr.dtype)


def read_commit(store: OpenedStore) -> Commit:
    """The committed prefix of the store, by the rule in this module's docstring."""
    if store.ends is None or store.tasks is None:
        return Commit(ends=np.zeros(0, np.int64), tasks=np.zeros(0, np.int32), data_rows={})
    ends = decodable_prefix(store.ends).astype(np.int64)
    tasks = decodable_prefix(store.tasks).astype(np.int32)
    # Data shapes were read after episode_ends' shape (open_checked opens it first); a live writer
    # grows data before ends, so this order rejects fewer fresh commits. Any order is safe.
    data_rows = {key: int(arr.shape[0]) for key, arr in store.data.items()}
    limit = min(data_rows.values())
    previous = np.concatenate(([0], ends[:-1]))
    ok = (ends > previous) & (ends <= limit)
    n = len(ends) if ok.all() else int(np.argmin(ok))
    n = min(n, len(tasks))
    return Commit(ends=ends[:n], tasks=tasks[:n], data_rows=data_rows)
