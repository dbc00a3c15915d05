"""RUN_DIR/run.json: the run's manifest (config, versions, start/end, status, git commit).

Never half-written: each write goes to a temporary file in the same directory, is fsynced, then
os.replace()d over run.json, and the directory is fsynced; a reader sees the old manifest or the new
one, never a torn file, even after a crash or power loss.

Never stale on a full disk: a write needs room for a second copy of run.json, and a run that filled
its disk must still record how it ended. So every successful write also makes sure a reserve file,
RUN_DIR/.run.json.reserve (RESERVE_BYTES of random bytes, so compressing filesystems store them
whole), sits beside run.json. A write that fails with ENOSPC or EDQUOT deletes the reserve, which
frees that room, and tries once more; the next write once there is space again puts the reserve
back. Only when there is no reserve to spend does a full disk fail the write (StoreError), and then
the previous run.json is kept whole.

One process should own updates: update_manifest is a read-modify-write with no lock.
"""

import errno
import json
import os
import uuid
from pathlib import Path
from typing import Any

from memory.errors import StoreError, reason

MANIFEST = "run.json"
RESERVE = ".run.json.reserve"
RESERVE_BYTES = 256 * 2**10  # room for a run.json (a few KiB) and its temporary copy, many times over
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Replace RUN_DIR/run.json with manifest (a JSON-serializable dict), creating RUN_DIR if needed.

    Atomic, and able to record a final status on a full disk (module docstring); StoreError if it fails.
    """
    run_dir = Path(run_dir)
    try:
        text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise StoreError(f"manifest for '{run_dir}' is not plain JSON: {reason(exc)}") from exc
    path = run_dir / MANIFEST
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        _replace(path, text.encode())
    except OSError as exc:
        if exc.errno not in _DISK_FULL or not _spend_reserve(run_dir / RESERVE):
            raise _not_written(path, exc) from exc
        try:
            _replace(path, text.encode())
        except OSError as again:
            raise _not_written(path, again) from again
    _keep_reserve(run_dir / RESERVE)


def _not_written(path: Path, exc: OSError) -> StoreError:
    if exc.errno in _DISK_FULL:
        return StoreError(
            f"'{path}' could not be updated: the disk is full ({exc.strerror}) and the manifest's reserve is "
            "spent; the previous run.json is kept: free some space"
        )
    return StoreError(f"'{path}' could not be written: {exc.strerror or reason(exc)}; the previous run.json is kept")


def _replace(path: Path, data: bytes) -> None:
    """Put data at path atomically and durably: a temporary file beside it, fsync, rename, fsync of the folder."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    _write_new(tmp, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(path.parent, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


def _write_new(path: Path, data: bytes) -> None:
    """Create the file path with data and fsync it; a failed write leaves no file behind."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _keep_reserve(path: Path) -> None:
    """Create the reserve file if it is missing; on a still-full disk there is none until space returns."""
    if path.exists():
        return
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        _write_new(tmp, os.urandom(RESERVE_BYTES))
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)


def _spend_reserve(path: Path) -> bool:
    """Delete the reserve file to free its room; whether there was one."""
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


def read_manifest(run_dir: str | Path) -> dict[str, Any]:
    """The manifest of a run; StoreError if it is missing or not a JSON object."""
    path = Path(run_dir) / MANIFEST
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise StoreError(f"no manifest at '{path}': the file does not exist (is '{run_dir}' a thalamus run?)") from None
    except OSError as exc:
        raise StoreError(f"'{path}' cannot be read: {exc.strerror}") from exc
    try:
        manifest = json.loads(text)
    except ValueError as exc:
        raise StoreError(f"'{path}' is corrupt: {reason(exc)} (fix or delete it)") from exc
    if not isinstance(manifest, dict):
        raise StoreError(f"'{path}' is corrupt: it holds a {type(manifest).__name__}, expected a JSON object")
    return manifest


def update_manifest(run_dir: str | Path, **fields: Any) -> dict[str, Any]:
    """Set fields in an existing manifest, write it atomically, and return the new manifest."""
    manifest = read_manifest(run_dir)
    manifest.update(fields)
    write_manifest(run_dir, manifest)
    return manifest
