"""The continual learner's memories in the run store: its cache memory and each column's spectral memory.

    store.zarr/
      learner/                           group; attrs: the commit record (below), written last
      cache/<save>/<name>                (C, ...) <dtype>  one array per name the learner passes (keys, values,
                                         labels, logits, task, age, ...), all with the same C <= capacity rows;
                                         group attrs: capacity, size, writes, evictions, policy, ...
      spectral/column_<m>/<save>/<name>  basis (D, r) float32, singular_values (r,) float32, a sketch (l, D), ...;
                                         group attrs: rank, dim, energy_captured, consolidation, updates, ...

<save> is "<step, 10 digits>-<8 random hex digits>", fresh for every save. The commit record,
    {"save": <save>, "step": int, "cache": {name: crc32, ...} or null, "spectral": [{name: crc32, ...}, ...]}
(one dict per column m), names every array of the save and the CRC-32 of its bytes.

Crash safety. A save (1) writes every array and its attrs under the fresh <save> name, never touching an
earlier save's files; (2) replaces learner/zarr.json with the new record, one file that zarr's LocalStore
writes to a temporary name and os.replace()s (see writer.py), so it is old or new, never torn: this is the
commit; (3) deletes every other save and stray temporary files. Killed in (1) or (2), the old record still
names the previous save, whose files are untouched; killed in (3), the new save is committed and the next
save deletes the leftovers. The store thus holds the committed save plus at most the remains of one killed
save: saving every few seconds does not grow it. A reader reads the record, the save it names, then the
record again; if another save committed meanwhile (and may have deleted what was read), it reads again.
Every array's CRC-32 is checked on load. Savers of one store take turns (an flock on learner/); the episode
writer writes only under episodes/ and is never blocked. As for episodes, power loss is not covered (no
fsync).
"""

import json
import re
import shutil
import uuid
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import zarr

from memory.errors import StoreError, reason
from memory.integrity import open_root
from memory.layout import COMPRESSORS, PARTIAL, STORE_DIR, check_key
from memory.lock import taking_turns
from memory.writer import ensure_store

LEARNER = "learner"
CACHE = "cache"
SPECTRAL = "spectral"
_SAVE = re.compile(r"\d{10,}-[0-9a-f]{8}")
_COLUMN = re.compile(r"column_(\d+)")
_READ_ATTEMPTS = 5  # a reader overtaken by this many saves in a row gives up
_CHUNK_BYTES = 2**20


@dataclass(frozen=True)
class MemoryBlock:
    """One memory's state: named numpy arrays and small JSON attrs (numbers, strings, bools, None, lists, dicts).

    On load, attrs come back as JSON gives them: tuples as lists, numpy scalars as Python numbers.
    """

    arrays: dict[str, np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class LearnerMemory:
    """One committed save: the cache memory (None if the save had none), one block per column, and the step."""

    cache: MemoryBlock | None
    spectral: list[MemoryBlock]
    step: int


@dataclass(frozen=True)
class _Record:
    """The commit record: the committed save's name and step, and the CRC-32 of each of its arrays."""

    save: str
    step: int
    cache: dict[str, int] | None
    spectral: list[dict[str, int]]

    def to_attrs(self) -> dict[str, Any]:
        return {"save": self.save, "step": self.step, "cache": self.cache, "spectral": self.spectral}


def save_learner_memory(
    run_dir: str | Path, cache: MemoryBlock | None, spectral: Sequence[MemoryBlock], step: int
) -> None:
    """Save the learner's cache and spectral memories at `step` into RUN_DIR/store.zarr, replacing the last save.

    Creates store.zarr (root attrs only) if the run has none yet. Killed at any moment, the store keeps the
    previous complete save (module docstring). The cache's arrays must share their first dimension C, and its
    attrs must hold an integer "capacity" >= C. Bad input or a corrupt or newer store raise StoreError.
    """
    step = _check_step(step)
    cache_block = None if cache is None else _checked_block(cache, "cache", rows=True)
    if not isinstance(spectral, Sequence) or isinstance(spectral, str):
        raise StoreError(f"spectral is a {type(spectral).__name__}, expected a list of MemoryBlock (one per column)")
    columns = [_checked_block(block, f"spectral column {m}", rows=False) for m, block in enumerate(spectral)]
    run_dir = Path(run_dir)
    path = _store_path(run_dir)
    if path != run_dir:
        ensure_store(run_dir)
    root, _ = open_root(path, writable=True)
    try:
        learner = root.require_group(LEARNER)
    except Exception as exc:
        raise StoreError(f"'{path}' cannot hold learner memory: {LEARNER}/ cannot be created ({reason(exc)})") from exc
    with taking_turns(path / LEARNER):
        save = f"{step:010d}-{uuid.uuid4().hex[:8]}"
        try:
            cache_sums = None if cache_block is None else _write_block(root.require_group(CACHE), save, cache_block)
            column_sums = []
            if columns:
                group = root.require_group(SPECTRAL)
                column_sums = [_write_block(group.require_group(f"column_{m}"), save, b) for m, b in enumerate(columns)]
            record = _Record(save=save, step=step, cache=cache_sums, spectral=column_sums)
            learner.attrs.put(record.to_attrs())  # the commit
        except Exception as exc:
            raise StoreError(f"learner memory could not be saved to '{path}': {reason(exc)}") from exc
        _collect(path, record)


def load_learner_memory(run_dir: str | Path) -> LearnerMemory | None:
    """The last committed save of RUN_DIR (or of a store.zarr path), bit for bit; None if it was never saved.

    A corrupt commit record, a damaged save, or a store written by a newer thalamus raise StoreError.
    """
    path = _store_path(Path(run_dir))
    if not path.exists():
        return None
    open_root(path, writable=False)  # format and version
    for _ in range(_READ_ATTEMPTS):
        record = _read_record(path)
        if record is None:
            return None
        failure: StoreError | None = None
        try:
            memory = _read_save(path, record)
        except StoreError as exc:
            failure = exc
        again = _read_record(path)
        if again is not None and again.save == record.save:  # nothing was replaced while reading
            if failure is not None:
                raise failure
            return memory
    raise StoreError(
        f"the learner memory in '{path}' was saved again {_READ_ATTEMPTS} times while being read: try again"
    )


# ---------------------------------------------------------------- checks


def _check_step(step: int) -> int:
    if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
        raise StoreError(f"step must be an integer >= 0, got {step!r}")
    return int(step)


def _checked_block(block: MemoryBlock, what: str, *, rows: bool) -> MemoryBlock:
    """A copy of block with C-contiguous native-order arrays and plain JSON attrs; StoreError naming what is wrong."""
    if not isinstance(block, MemoryBlock):
        raise StoreError(f"{what} is a {type(block).__name__}, expected a MemoryBlock")
    if not isinstance(block.arrays, dict):
        raise StoreError(f"{what} arrays is a {type(block.arrays).__name__}, expected a dict of numpy arrays")
    if rows and not block.arrays:
        raise StoreError(f"{what} has no arrays")
    arrays: dict[str, np.ndarray] = {}
    for name, value in block.arrays.items():
        check_key(name, f"{what} array name")
        if name == "zarr.json":
            raise StoreError(f"{what} array name 'zarr.json' is reserved by zarr")
        value = np.asarray(value)
        if value.dtype.kind not in "biufc":
            raise StoreError(f"{what} array {name!r} has dtype {value.dtype}, expected numbers or bool")
        arrays[name] = np.asarray(value, dtype=value.dtype.newbyteorder("="), order="C")  # 0-d stays 0-d
    if rows:
        first = next(iter(arrays))
        for name, value in arrays.items():
            if value.ndim == 0:
                raise StoreError(f"{what} array {name!r} is a scalar, expected one row per entry")
            if len(value) != len(arrays[first]):
                raise StoreError(
                    f"{what} array {name!r} has {len(value)} rows, expected {len(arrays[first])} like {first!r}"
                )
    if not isinstance(block.attrs, dict):
        raise StoreError(f"{what} attrs is a {type(block.attrs).__name__}, expected a dict")
    attrs = _plain(block.attrs, f"{what} attrs")
    if rows:
        capacity = attrs.get("capacity")
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 0:
            raise StoreError(f"{what} attrs need an integer 'capacity' >= 0, got {capacity!r}")
        if len(arrays[first]) > capacity:
            raise StoreError(f"{what} holds {len(arrays[first])} entries, more than its capacity {capacity}")
    return MemoryBlock(arrays=arrays, attrs=attrs)


def _plain(value: Any, where: str) -> Any:
    """value as plain JSON data (numpy scalars as Python numbers, tuples as lists); StoreError otherwise."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        out = {}
        for key, v in value.items():
            if not isinstance(key, str):
                raise StoreError(f"{where} has the key {key!r}: attr keys must be strings")
            out[key] = _plain(v, f"{where}[{key!r}]")
        return out
    raise StoreError(
        f"{where} is a {type(value).__name__}: attrs hold only numbers, strings, bools, None, lists and dicts"
    )


# ---------------------------------------------------------------- writing


def _store_path(run_dir: Path) -> Path:
    """run_dir itself if it is a store, else its store.zarr."""
    if run_dir.suffix == ".zarr" or (run_dir / "zarr.json").is_file():
        return run_dir
    return run_dir / STORE_DIR


def _chunks(value: np.ndarray) -> tuple[int, ...]:
    """Chunked along the first axis only, about 1 MiB per chunk; every chunk side at least 1."""
    if value.ndim == 0:
        return ()
    inner = tuple(max(1, n) for n in value.shape[1:])
    row_bytes = value.dtype.itemsize * int(np.prod(inner))
    return (max(1, min(len(value), _CHUNK_BYTES // row_bytes)), *inner)


def _write_block(parent: zarr.Group, save: str, block: MemoryBlock) -> dict[str, int]:
    """Write block as the new group parent/save; returns the CRC-32 of each array's bytes."""
    group = parent.create_group(save, attributes=block.attrs)
    sums = {}
    for name, value in block.arrays.items():
        # Every chunk is written, even one equal to the fill value: -0.0 must not come back as 0.0.
        arr = group.create_array(name, shape=value.shape, dtype=value.dtype, chunks=_chunks(value),
                                 compressors=COMPRESSORS, chunk_key_encoding={"name": "default", "separator": "."},
                                 config={"write_empty_chunks": True})
        if value.size:
            arr[...] = value
        sums[name] = zlib.crc32(value)
    return sums


def _collect(path: Path, record: _Record) -> None:
    """Delete every save but the committed one, columns past the committed count, and stray temporary files."""
    _remove_saves(path / CACHE, record.save if record.cache is not None else None)
    spectral = path / SPECTRAL
    if spectral.is_dir():
        for entry in spectral.iterdir():
            match = _COLUMN.fullmatch(entry.name)
            if not (match and entry.is_dir()):
                continue
            if int(match[1]) < len(record.spectral):
                _remove_saves(entry, record.save)
            else:
                shutil.rmtree(entry, ignore_errors=True)
    for folder in (path, path / LEARNER, spectral):  # the root too: creating a group rewrites its zarr.json
        _remove_saves(folder, None)


def _remove_saves(folder: Path, keep: str | None) -> None:
    """In folder, delete every save directory except keep, and zarr's temporary files of killed writes."""
    if not folder.is_dir():
        return
    for entry in folder.iterdir():
        if entry.is_dir() and _SAVE.fullmatch(entry.name) and entry.name != keep:
            shutil.rmtree(entry, ignore_errors=True)
        elif PARTIAL.search(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)


# ---------------------------------------------------------------- reading


def _bad_record(path: Path, why: str) -> StoreError:
    return StoreError(f"'{path}' is corrupt: the learner memory's commit record {LEARNER}/zarr.json {why}")


def _is_sums(value: Any) -> bool:
    return isinstance(value, dict) and all(
        isinstance(k, str) and isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**32
        for k, v in value.items()
    )


def _read_record(path: Path) -> _Record | None:
    """The commit record, read from the file itself (never cached); None if nothing was ever committed."""
    file = path / LEARNER / "zarr.json"
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise _bad_record(path, f"cannot be read ({reason(exc)})") from exc
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise _bad_record(path, f"is not JSON ({reason(exc)})") from exc
    attrs = meta.get("attributes", {}) if isinstance(meta, dict) and meta.get("node_type") == "group" else None
    if not isinstance(attrs, dict):
        raise _bad_record(path, "is not the metadata of a zarr group with attributes")
    if not attrs:
        return None  # the group is there, no save has committed yet
    save, step, cache, spectral = (attrs.get(k) for k in ("save", "step", "cache", "spectral"))
    if not isinstance(save, str) or not _SAVE.fullmatch(save):
        raise _bad_record(path, f"names the save {save!r}, expected '<step>-<8 hex digits>'")
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise _bad_record(path, f"has step {step!r}, expected an integer >= 0")
    if cache is not None and not _is_sums(cache):
        raise _bad_record(path, "has a 'cache' that is not null or a map of array names to CRC-32s")
    if not isinstance(spectral, list) or not all(_is_sums(column) for column in spectral):
        raise _bad_record(path, "has a 'spectral' that is not a list of maps of array names to CRC-32s")
    return _Record(save=save, step=step, cache=cache, spectral=spectral)


def _read_save(path: Path, record: _Record) -> LearnerMemory:
    try:
        root = zarr.open_group(path, mode="r", zarr_format=3)
    except Exception as exc:
        raise StoreError(f"'{path}' is damaged: its root group cannot be read ({reason(exc)})") from exc
    cache = None if record.cache is None else _read_block(root, path, f"{CACHE}/{record.save}", record.cache)
    spectral = [
        _read_block(root, path, f"{SPECTRAL}/column_{m}/{record.save}", sums) for m, sums in enumerate(record.spectral)
    ]
    return LearnerMemory(cache=cache, spectral=spectral, step=record.step)


def _read_block(root: zarr.Group, path: Path, name: str, sums: dict[str, int]) -> MemoryBlock:
    """The group root/name with the arrays the record names, each checked against its CRC-32."""
    try:
        group = root[name]
        if not isinstance(group, zarr.Group):
            raise StoreError(f"'{path}' is damaged: {name} is an array, expected a group")
        attrs = group.attrs.asdict()
        arrays = {}
        for key in sums:
            arr = group[key]
            if not isinstance(arr, zarr.Array):
                raise StoreError(f"'{path}' is damaged: {name}/{key} is a group, expected an array")
            arrays[key] = np.asarray(arr[...], order="C")
    except StoreError:
        raise
    except Exception as exc:  # a missing or undecodable node or chunk
        raise StoreError(f"'{path}' is damaged: {name} cannot be read ({reason(exc)})") from exc
    for key, value in arrays.items():
        if zlib.crc32(value) != sums[key]:
            raise StoreError(f"'{path}' is damaged: {name}/{key} does not match its CRC-32 in the commit record")
    return MemoryBlock(arrays=arrays, attrs=attrs)
