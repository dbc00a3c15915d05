"""Helper processes that end with the process that started them.

A command stopped by SIGKILL, SIGTERM or a closed terminal dies without unwinding its ``with`` blocks,
and its workers would go on (training, or waiting forever on a semaphore), holding cores and memory
with nobody to read their results.
"""

from __future__ import annotations

import ctypes
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent exits (Linux; elsewhere nothing). Call
    it first thing in a worker process."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
