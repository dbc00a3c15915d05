"""An exclusive lock that makes the one writer of a store the only one (zarr itself has no locking)."""

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from memory.errors import StoreBusy, StoreError


class WriterLock:
    """An flock on the store directory itself: no extra file, and the kernel drops it when the writer dies."""

    def __init__(self, path: Path) -> None:
        try:
            self._fd: int | None = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise StoreError(f"'{path}' cannot be opened for writing: {exc.strerror}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            raise StoreBusy(
                f"'{path}' is already open for writing by another process (one writer per store): "
                "close that writer first, or open the store read-only"
            ) from None

    def release(self) -> None:
        """Drop the lock; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


@contextlib.contextmanager
def taking_turns(path: Path) -> Iterator[None]:
    """Hold a blocking flock on path (a directory) for the with-block: its writers wait for each other."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise StoreError(f"'{path}' cannot be opened for writing: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
