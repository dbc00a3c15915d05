"""Process set-up: helper processes that end with the process that started them, and an allocator
that keeps the memory it frees.

A command stopped by SIGKILL, SIGTERM or a closed terminal dies without unwinding its ``with`` blocks,
and its workers would go on (training, or waiting forever on a semaphore), holding cores and memory
with nobody to read their results.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1  # prctl(2)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # mallopt(3)
MMAP_THRESHOLD = 32 << 20  # glibc's largest: blocks below it come from the heap and are reused
TRIM_THRESHOLD = 1 << 30  # free heap kept before any is given back to the OS


def die_with_parent() -> None:
    """Have the kernel send this process SIGTERM when its parent exits (Linux; elsewhere nothing). Call
    it first thing in a worker process."""
    if sys.platform == "linux":
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def keep_freed_memory() -> None:
    """glibc: reuse freed blocks of up to 32 MB instead of handing them back to the OS and faulting
    them in again. A captioner's per-call tensors (MBs, a different size as calls cover more or
    fewer steps) otherwise cost ~100,000 page faults a second, a sixth of a core (BENCHMARKS.md).
    This process from now on, and (through the environment) the processes it starts, such as a
    local Ray cluster's workers; elsewhere than Linux with glibc, nothing."""
    os.environ.setdefault("MALLOC_MMAP_THRESHOLD_", str(MMAP_THRESHOLD))
    os.environ.setdefault("MALLOC_TRIM_THRESHOLD_", str(TRIM_THRESHOLD))
    if sys.platform != "linux":
        return
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except AttributeError:  # a libc without mallopt (musl)
        return
    mallopt(M_MMAP_THRESHOLD, int(os.environ["MALLOC_MMAP_THRESHOLD_"]))
    mallopt(M_TRIM_THRESHOLD, int(os.environ["MALLOC_TRIM_THRESHOLD_"]))
