"""RUN_DIR/run.json: the run's manifest (config, versions, start/end, status, git commit).

Written atomically (temporary file in the same directory, fsync, os.replace, fsync of the directory),
so a reader sees the old manifest or the new one, never a torn file, even after a crash. One process
should own updates: update_manifest is a read-modify-write with no lock.
"""

import json
import os
import uuid
from pathlib import Path
from typing import Any

from memory.errors import StoreError, reason

MANIFEST = "run.json"


def write_manifest(run_dir: str | Path, manifest: dict[str, Any]) -> None:
    """Replace RUN_DIR/run.json with manifest (a JSON-serializable dict), creating RUN_DIR if needed."""
    run_dir = Path(run_dir)
    try:
        text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    except (TypeError, ValueError) as exc:
        raise StoreError(f"manifest for '{run_dir}' is not plain JSON: {reason(exc)}") from exc
    run_dir.mkdir(parents=True, exist_ok=True)
    tmp = run_dir / f".{MANIFEST}.{uuid.uuid4().hex}.tmp"
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, run_dir / MANIFEST)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    folder = os.open(run_dir, os.O_RDONLY)  # make the rename itself durable
    try:
        os.fsync(folder)
    finally:
        os.close(folder)


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
